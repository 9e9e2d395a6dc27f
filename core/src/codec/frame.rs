//! Framing: every Kafka request and response is a 4-byte big-endian size followed by that many bytes.
//!
//! [`FrameDecoder`] splits a connection's byte stream into frames. The size prefix is checked against
//! the configured maximum *before* any memory is reserved, so a hostile prefix costs nothing.

use super::CodecError;
use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Default largest frame accepted: 100 MiB, Kafka's `socket.request.max.bytes` default.
pub const DEFAULT_MAX_FRAME_SIZE: usize = 100 * 1024 * 1024;

/// Splits a byte stream into frames (without their size prefix).
#[derive(Clone, Debug)]
pub struct FrameDecoder {
    max_frame_size: usize,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        FrameDecoder::new(DEFAULT_MAX_FRAME_SIZE)
    }
}

impl FrameDecoder {
    /// A decoder refusing frames larger than `max_frame_size` bytes.
    pub fn new(max_frame_size: usize) -> Self {
        FrameDecoder { max_frame_size }
    }

    /// The largest frame accepted.
    pub fn max_frame_size(&self) -> usize {
        self.max_frame_size
    }

    /// Takes the next whole frame out of `buf`, or `None` until enough bytes have arrived.
    ///
    /// After an error the stream cannot be resynchronised: the caller closes the connection.
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<Bytes>, CodecError> {
        let Some(prefix) = buf.get(..4) else {
            return Ok(None);
        };
        let size = i32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
        if size < 0 {
            return Err(CodecError::NegativeFrameSize(size));
        }
        let size = size as usize;
        if size > self.max_frame_size {
            return Err(CodecError::FrameTooLarge {
                size: size as u64,
                limit: self.max_frame_size,
            });
        }
        if buf.len() < 4 + size {
            // No reservation for the announced size: a client announcing 100 MiB and sending
            // nothing costs nothing; the buffer grows only with bytes that really arrive.
            return Ok(None);
        }
        buf.advance(4);
        Ok(Some(buf.split_to(size).freeze()))
    }
}

/// Appends one frame to `out`: reserves the size prefix, lets `body` write, then fills the prefix in.
pub fn encode_frame<E>(
    out: &mut BytesMut,
    body: impl FnOnce(&mut BytesMut) -> Result<(), E>,
) -> Result<(), E>
where
    E: From<CodecError>,
{
    let start = out.len();
    out.put_i32(0);
    body(out)?;
    let len = out.len() - start - 4;
    let Ok(len) = i32::try_from(len) else {
        out.truncate(start);
        return Err(CodecError::TooLongToEncode(len).into());
    };
    out[start..start + 4].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_frames_and_waits_for_more() {
        let d = FrameDecoder::new(16);
        let mut buf = BytesMut::from(&[0, 0, 0, 3, 1, 2][..]);
        assert_eq!(d.decode(&mut buf).unwrap(), None);
        buf.extend_from_slice(&[3, 0, 0, 0, 0]);
        assert_eq!(
            d.decode(&mut buf).unwrap().unwrap(),
            Bytes::from_static(&[1, 2, 3])
        );
        assert_eq!(d.decode(&mut buf).unwrap().unwrap(), Bytes::new());
        assert_eq!(d.decode(&mut buf).unwrap(), None);
    }

    #[test]
    fn refuses_oversized_and_negative_prefixes_before_reserving() {
        let d = FrameDecoder::new(16);
        let mut buf = BytesMut::from(&[0x7f, 0xff, 0xff, 0xff][..]);
        let cap = buf.capacity();
        assert!(matches!(
            d.decode(&mut buf),
            Err(CodecError::FrameTooLarge { .. })
        ));
        assert_eq!(buf.capacity(), cap);
        let mut buf = BytesMut::from(&[0xff, 0xff, 0xff, 0xfe][..]);
        assert_eq!(d.decode(&mut buf), Err(CodecError::NegativeFrameSize(-2)));
    }

    #[test]
    fn encodes_the_size_prefix() {
        let mut out = BytesMut::new();
        encode_frame::<CodecError>(&mut out, |b| {
            b.put_slice(b"abc");
            Ok(())
        })
        .unwrap();
        assert_eq!(&out[..], &[0, 0, 0, 3, b'a', b'b', b'c']);
    }
}
