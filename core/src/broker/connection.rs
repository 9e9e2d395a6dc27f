//! One client connection: bytes in, frames out, and responses sent strictly in request order.
//!
//! Kafka clients pipeline requests and match responses by correlation id, but they also rely on the
//! broker answering in the order requests arrived. Each request gets a sequence number when its frame
//! is read; responses that complete out of order wait in `ready` until every earlier one has gone.

use crate::codec::{CodecError, Frame, FrameDecoder};
use bytes::{Bytes, BytesMut};
use std::collections::BTreeMap;

/// Per-connection state.
#[derive(Debug)]
pub(crate) struct Connection {
    inbound: BytesMut,
    frames: FrameDecoder,
    next_seq: u64,
    next_to_send: u64,
    /// Finished responses waiting for earlier ones; `None` means "no response" (acks=0 produce).
    ready: BTreeMap<u64, Option<Frame>>,
    /// Bytes of requests read and not yet answered (bounded by `max_in_flight_bytes`).
    pub(crate) in_flight_bytes: usize,
    /// The client's host, as group descriptions report it.
    pub(crate) peer: crate::codec::KStr,
}

impl Connection {
    pub(crate) fn new(max_frame_bytes: usize, peer: crate::codec::KStr) -> Connection {
        Connection {
            inbound: BytesMut::new(),
            frames: FrameDecoder::new(max_frame_bytes),
            next_seq: 0,
            next_to_send: 0,
            ready: BTreeMap::new(),
            in_flight_bytes: 0,
            peer,
        }
    }

    /// Appends received bytes; call [`Connection::next_frame`] until it returns `None`.
    pub(crate) fn receive(&mut self, bytes: &[u8]) {
        self.inbound.extend_from_slice(bytes);
    }

    /// The next whole frame, if one has arrived.
    pub(crate) fn next_frame(&mut self) -> Result<Option<Bytes>, CodecError> {
        self.frames.decode(&mut self.inbound)
    }

    /// Numbers a new request.
    pub(crate) fn start_request(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    /// Records the response of request `seq` and returns every response now sendable, in order.
    pub(crate) fn finish(&mut self, seq: u64, response: Option<Frame>) -> Vec<Frame> {
        self.ready.insert(seq, response);
        let mut out = Vec::new();
        while let Some(r) = self.ready.remove(&self.next_to_send) {
            out.extend(r);
            self.next_to_send += 1;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_leave_in_request_order() {
        let mut c = Connection::new(1024, crate::codec::KStr::EMPTY);
        let (a, b, d) = (c.start_request(), c.start_request(), c.start_request());
        let frame = |b: &'static [u8]| Frame::from(Bytes::from_static(b));
        assert!(c.finish(b, Some(frame(b"b"))).is_empty());
        assert!(c.finish(d, None).is_empty());
        assert_eq!(
            c.finish(a, Some(frame(b"a"))),
            vec![frame(b"a"), frame(b"b")]
        );
        assert!(c.ready.is_empty());
    }
}
