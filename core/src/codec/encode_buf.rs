//! The buffer messages are encoded into, which can leave record batches where they are.
//!
//! A fetch response is mostly record batches read from the log. Copying them into the response
//! buffer was a seventh of the gateway's CPU while serving consumers; an [`EncodeBuf`] that
//! *splices* keeps each large batch as the `Bytes` it already is, and the frame leaves as a list of
//! parts (see [`Frame`]) that the runtime hands to one vectored write.

use super::CodecError;
use bytes::{BufMut, Bytes, BytesMut};
use std::ops::{Deref, DerefMut};

/// Record batches shorter than this are copied even when splicing: a part of its own costs a
/// reference count and an iovec entry, more than copying a small batch.
const SPLICE_MIN: usize = 4096;

/// Whether a splicing buffer keeps a record batch of `len` bytes by reference (else it copies it).
pub fn splices(len: usize) -> bool {
    len >= SPLICE_MIN
}

/// A `BytesMut` (it derefs to one, so the field writers in [`super::wire`] take it as it is) that
/// can hold record batches by reference. Only [`EncodeBuf::put_records`] splices; everything else
/// is written in place.
#[derive(Debug, Default)]
pub struct EncodeBuf {
    buf: BytesMut,
    /// The batches spliced so far, each with the number of bytes of `buf` written before it.
    spliced: Vec<(usize, Bytes)>,
    spliced_len: usize,
    splice: bool,
}

impl EncodeBuf {
    /// A buffer that splices record batches, with `capacity` bytes reserved for the rest.
    pub fn splicing(capacity: usize) -> EncodeBuf {
        EncodeBuf {
            buf: BytesMut::with_capacity(capacity),
            splice: true,
            ..EncodeBuf::default()
        }
    }

    /// Runs `encode` on a copying buffer that continues `buf`, and leaves the result in `buf`.
    pub fn copying_into<T>(buf: &mut BytesMut, encode: impl FnOnce(&mut EncodeBuf) -> T) -> T {
        let mut this = EncodeBuf {
            buf: std::mem::take(buf),
            ..EncodeBuf::default()
        };
        let result = encode(&mut this);
        *buf = this.buf;
        result
    }

    /// Bytes encoded so far, spliced batches included.
    pub fn total_len(&self) -> usize {
        self.buf.len() + self.spliced_len
    }

    /// Appends a record batch (its length prefix is already written): by reference when splicing
    /// and it is large enough, as a copy otherwise.
    pub fn put_records(&mut self, records: &Bytes) {
        if self.splice && splices(records.len()) {
            self.spliced.push((self.buf.len(), records.clone()));
            self.spliced_len += records.len();
        } else {
            self.buf.put_slice(records);
        }
    }

    /// The encoded bytes as parts to write in order.
    pub fn into_frame(mut self) -> Frame {
        let mut parts = Vec::with_capacity(2 * self.spliced.len() + 1);
        let mut taken = 0;
        for (at, records) in self.spliced {
            if at > taken {
                parts.push(self.buf.split_to(at - taken).freeze());
                taken = at;
            }
            parts.push(records);
        }
        if !self.buf.is_empty() || parts.is_empty() {
            parts.push(self.buf.freeze());
        }
        Frame { parts }
    }
}

impl Deref for EncodeBuf {
    type Target = BytesMut;

    fn deref(&self) -> &BytesMut {
        &self.buf
    }
}

impl DerefMut for EncodeBuf {
    fn deref_mut(&mut self) -> &mut BytesMut {
        &mut self.buf
    }
}

/// One encoded frame as parts to write in order, with no bytes between them: a response whose
/// record batches were spliced in rather than copied. Most frames are one part.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frame {
    parts: Vec<Bytes>,
}

impl Frame {
    /// The parts, in order.
    pub fn parts(&self) -> &[Bytes] {
        &self.parts
    }

    /// The parts, in order.
    pub fn into_parts(self) -> Vec<Bytes> {
        self.parts
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.parts.iter().map(Bytes::len).sum()
    }

    /// Whether it has no bytes.
    pub fn is_empty(&self) -> bool {
        self.parts.iter().all(Bytes::is_empty)
    }

    /// The frame as one `Bytes`: free for a frame of one part, a copy otherwise.
    pub fn to_bytes(&self) -> Bytes {
        match &self.parts[..] {
            [] => Bytes::new(),
            [one] => one.clone(),
            parts => {
                let mut all = BytesMut::with_capacity(self.len());
                parts.iter().for_each(|p| all.put_slice(p));
                all.freeze()
            }
        }
    }
}

impl From<Bytes> for Frame {
    fn from(bytes: Bytes) -> Frame {
        Frame { parts: vec![bytes] }
    }
}

/// Encodes one size-prefixed frame in a splicing buffer with `capacity` bytes reserved besides
/// the record batches (see [`super::encode_frame`] for the copying form).
pub fn encode_frame_parts<E>(
    capacity: usize,
    body: impl FnOnce(&mut EncodeBuf) -> Result<(), E>,
) -> Result<Frame, E>
where
    E: From<CodecError>,
{
    let mut out = EncodeBuf::splicing(capacity);
    out.put_i32(0);
    body(&mut out)?;
    let len = out.total_len() - 4;
    let len = i32::try_from(len).map_err(|_| CodecError::TooLongToEncode(len))?;
    out[..4].copy_from_slice(&len.to_be_bytes());
    Ok(out.into_frame())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splices_large_batches_and_copies_small_ones() {
        let big = Bytes::from(vec![7u8; SPLICE_MIN]);
        let small = Bytes::from_static(b"tiny");
        let body = |b: &mut EncodeBuf| {
            b.put_u8(1);
            b.put_records(&big);
            b.put_u8(2);
            b.put_records(&small);
            b.put_records(&big);
        };
        let frame = encode_frame_parts::<CodecError>(16, |b| {
            body(b);
            Ok(())
        })
        .unwrap();
        let len = 1 + SPLICE_MIN + 1 + 4 + SPLICE_MIN;
        let parts = frame.parts();
        assert_eq!(parts.len(), 4);
        assert_eq!(
            &parts[0][..],
            &[&(len as i32).to_be_bytes()[..], &[1]].concat()[..]
        );
        assert_eq!(parts[1].as_ptr(), big.as_ptr(), "spliced, not copied");
        assert_eq!(&parts[2][..], b"\x02tiny");
        assert_eq!(parts[3].as_ptr(), big.as_ptr());
        assert_eq!(frame.len(), 4 + len);

        let mut copied = BytesMut::new();
        super::super::encode_frame::<CodecError>(&mut copied, |b| {
            EncodeBuf::copying_into(b, body);
            Ok(())
        })
        .unwrap();
        assert_eq!(frame.to_bytes(), copied.freeze());
    }

    #[test]
    fn a_frame_without_batches_is_one_part() {
        let frame = encode_frame_parts::<CodecError>(8, |b| {
            b.put_u8(9);
            Ok(())
        })
        .unwrap();
        assert_eq!(frame.parts(), &[Bytes::from_static(&[0, 0, 0, 1, 9])]);
    }
}
