//! Record batches (magic 2), the unit of storage and transfer in Kafka.
//!
//! A batch stays the bytes the producer sent: [`RecordBatch::parse`] checks the header, the length and
//! the CRC-32C once and keeps the whole batch as `Bytes`; records are decoded lazily by [`Records`],
//! whose keys, values and headers are slices of the (possibly decompressed) batch. Magic 0/1 message
//! sets no longer exist in Kafka 4 and are refused, never guessed at.
//!
//! Layout (big-endian), 61 header bytes then the records:
//! base offset i64, batch length i32 (bytes after this field), partition leader epoch i32, magic i8,
//! crc u32 (CRC-32C of everything after it), attributes i16, last offset delta i32, base timestamp
//! i64, max timestamp i64, producer id i64, producer epoch i16, base sequence i32, record count i32.

use super::CodecError;
use super::compression::Compression;
use super::wire::{self as w, PResult, Src};
use bytes::{BufMut, Bytes, BytesMut};

/// Bytes before the records in a v2 batch.
pub const BATCH_HEADER_LEN: usize = 61;
/// Offset of the batch length field's end: `batch_length` counts the bytes after it.
const LENGTH_END: usize = 12;
const MAGIC_AT: usize = 16;
/// The CRC covers everything from the attributes to the end.
const CRC_FROM: usize = 21;

/// Default cap on a batch's decompressed size.
pub const DEFAULT_MAX_DECOMPRESSED: usize = 128 * 1024 * 1024;

/// The attributes of a batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Attributes(pub i16);

impl Attributes {
    /// The compression codec (bits 0-2).
    pub fn compression(self) -> Result<Compression, CodecError> {
        Compression::from_id((self.0 & 0x07) as u8)
    }
    /// Whether timestamps are broker-assigned (bit 3).
    pub fn log_append_time(self) -> bool {
        self.0 & 0x08 != 0
    }
    /// Whether the batch belongs to a transaction (bit 4).
    pub fn transactional(self) -> bool {
        self.0 & 0x10 != 0
    }
    /// Whether the batch holds control records (transaction markers, bit 5).
    pub fn control(self) -> bool {
        self.0 & 0x20 != 0
    }
    /// Whether the batch carries a delete horizon (bit 6).
    pub fn has_delete_horizon(self) -> bool {
        self.0 & 0x40 != 0
    }
    /// These attributes with `compression` in bits 0-2.
    pub fn with_compression(self, compression: Compression) -> Attributes {
        Attributes((self.0 & !0x07) | i16::from(compression.id()))
    }
}

/// The fixed header of a v2 batch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record.
    pub base_offset: i64,
    /// Bytes after the length field.
    pub batch_length: i32,
    /// The leader epoch that appended the batch.
    pub partition_leader_epoch: i32,
    /// Always 2.
    pub magic: i8,
    /// CRC-32C of the bytes from the attributes on.
    pub crc: u32,
    /// Codec, timestamp type, transactional and control flags.
    pub attributes: Attributes,
    /// Offset of the last record minus the base offset.
    pub last_offset_delta: i32,
    /// Timestamp of the first record.
    pub base_timestamp: i64,
    /// Largest timestamp in the batch.
    pub max_timestamp: i64,
    /// Idempotent/transactional producer id, or -1.
    pub producer_id: i64,
    /// Producer epoch, or -1.
    pub producer_epoch: i16,
    /// Sequence of the first record, or -1.
    pub base_sequence: i32,
    /// Number of records.
    pub record_count: i32,
}

impl BatchHeader {
    fn decode(i: &[u8]) -> PResult<'_, BatchHeader> {
        let (i, base_offset) = w::i64(i)?;
        let (i, batch_length) = w::i32(i)?;
        let (i, partition_leader_epoch) = w::i32(i)?;
        let (i, magic) = w::i8(i)?;
        let (i, crc) = w::u32(i)?;
        let (i, attributes) = w::i16(i)?;
        let (i, last_offset_delta) = w::i32(i)?;
        let (i, base_timestamp) = w::i64(i)?;
        let (i, max_timestamp) = w::i64(i)?;
        let (i, producer_id) = w::i64(i)?;
        let (i, producer_epoch) = w::i16(i)?;
        let (i, base_sequence) = w::i32(i)?;
        let (i, record_count) = w::i32(i)?;
        let header = BatchHeader {
            base_offset,
            batch_length,
            partition_leader_epoch,
            magic,
            crc,
            attributes: Attributes(attributes),
            last_offset_delta,
            base_timestamp,
            max_timestamp,
            producer_id,
            producer_epoch,
            base_sequence,
            record_count,
        };
        Ok((i, header))
    }

    /// Offset of the last record.
    pub fn last_offset(&self) -> i64 {
        self.base_offset
            .saturating_add(i64::from(self.last_offset_delta))
    }
}

/// One validated v2 record batch: its header and its bytes, untouched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordBatch {
    header: BatchHeader,
    bytes: Bytes,
}

impl RecordBatch {
    /// Validates one whole batch (magic, length, CRC, counts) without decoding its records.
    pub fn parse(bytes: Bytes) -> Result<RecordBatch, CodecError> {
        if let Some(&magic) = bytes.get(MAGIC_AT)
            && magic != 2
        {
            return Err(CodecError::UnsupportedMagic(magic as i8));
        }
        let (_, header) = BatchHeader::decode(&bytes).map_err(super::finish_err)?;
        if i64::from(header.batch_length) + LENGTH_END as i64 != bytes.len() as i64 {
            return Err(CodecError::CorruptBatch(
                "batch length does not match its bytes",
            ));
        }
        let computed = crc32c::crc32c(&bytes[CRC_FROM..]);
        if computed != header.crc {
            return Err(CodecError::CrcMismatch {
                stored: header.crc,
                computed,
            });
        }
        if header.record_count < 0 || header.last_offset_delta < 0 {
            return Err(CodecError::CorruptBatch(
                "negative record count or offset delta",
            ));
        }
        let compression = header.attributes.compression()?;
        // Every record takes at least 7 bytes uncompressed; a count beyond that is a lie.
        if compression == Compression::None
            && header.record_count as usize > (bytes.len() - BATCH_HEADER_LEN) / 7
        {
            return Err(CodecError::CorruptBatch(
                "record count exceeds the batch size",
            ));
        }
        Ok(RecordBatch { header, bytes })
    }

    /// The header.
    pub fn header(&self) -> &BatchHeader {
        &self.header
    }

    /// The whole batch as received.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// The records, decompressed if needed (at most `max_decompressed` bytes).
    pub fn records(&self, max_decompressed: usize) -> Result<Records, CodecError> {
        let payload = self.bytes.slice(BATCH_HEADER_LEN..);
        let data = self
            .header
            .attributes
            .compression()?
            .decompress(&payload, max_decompressed)?;
        Ok(Records {
            data,
            count: self.header.record_count,
        })
    }
}

/// Splits a RECORDS field (one or more concatenated batches) into validated batches.
///
/// Producers send whole batches; an incomplete trailing batch (which fetch responses may contain) is
/// reported as an error here, for the caller to treat as it sees fit.
pub struct Batches {
    rest: Bytes,
}

impl Batches {
    /// Batches in `records`.
    pub fn new(records: Bytes) -> Batches {
        Batches { rest: records }
    }
}

impl Iterator for Batches {
    type Item = Result<RecordBatch, CodecError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let Some(len) = self.rest.get(8..LENGTH_END) else {
            self.rest.clear();
            return Some(Err(CodecError::CorruptBatch("truncated batch header")));
        };
        let len = i32::from_be_bytes([len[0], len[1], len[2], len[3]]);
        let total = i64::from(len) + LENGTH_END as i64;
        if len < 0 || total < BATCH_HEADER_LEN as i64 || total > self.rest.len() as i64 {
            // Magic 0/1 message sets share this length layout; name them for what they are.
            let magic = self.rest.get(MAGIC_AT).map(|&m| m as i8);
            self.rest.clear();
            return Some(Err(match magic {
                Some(m) if m != 2 => CodecError::UnsupportedMagic(m),
                _ => CodecError::CorruptBatch("batch length exceeds the data"),
            }));
        }
        let batch = self.rest.split_to(total as usize);
        let parsed = RecordBatch::parse(batch);
        if parsed.is_err() {
            self.rest.clear();
        }
        Some(parsed)
    }
}

/// A record header: key and optional value, borrowed from the batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header<'a> {
    /// The header key (UTF-8 by convention; not validated, as in Kafka).
    pub key: &'a [u8],
    /// The value, or `None` for null.
    pub value: Option<&'a [u8]>,
}

/// One record, borrowed from its batch's (decompressed) bytes: decoding allocates nothing and touches
/// no reference count. [`Records::slice`] turns a field into zero-copy `Bytes` when one must outlive
/// the borrow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// Record attributes (unused by Kafka today).
    pub attributes: i8,
    /// Timestamp minus the batch's base timestamp.
    pub timestamp_delta: i64,
    /// Offset minus the batch's base offset.
    pub offset_delta: i32,
    /// The key, or `None` for null.
    pub key: Option<&'a [u8]>,
    /// The value, or `None` for null (a tombstone).
    pub value: Option<&'a [u8]>,
    /// The headers, still encoded.
    pub headers: RecordHeaders<'a>,
}

/// A record's headers, decoded on iteration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordHeaders<'a> {
    data: &'a [u8],
    count: i32,
}

impl<'a> RecordHeaders<'a> {
    /// Number of headers.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The headers, in order (validated when the record was decoded).
    pub fn iter(&self) -> impl Iterator<Item = Header<'a>> + 'a {
        let mut i: &'a [u8] = self.data;
        (0..self.count).map_while(move |_| {
            let (rest, h) = header(i).ok()?;
            i = rest;
            Some(h)
        })
    }
}

fn varint_bytes(i: &[u8]) -> PResult<'_, Option<&[u8]>> {
    let (i, len) = w::varint(i)?;
    match len {
        -1 => Ok((i, None)),
        n if n < 0 => Err(nom::Err::Failure(CodecError::InvalidLength(i64::from(n)))),
        n if n as usize > i.len() => Err(nom::Err::Failure(CodecError::LengthExceedsInput {
            len: n as u64,
            left: i.len(),
        })),
        n => {
            let (value, rest) = i.split_at(n as usize);
            Ok((rest, Some(value)))
        }
    }
}

fn header(i: &[u8]) -> PResult<'_, Header<'_>> {
    let (i, key) = varint_bytes(i)?;
    let key = key.ok_or(nom::Err::Failure(CodecError::UnexpectedNull))?;
    let (i, value) = varint_bytes(i)?;
    Ok((i, Header { key, value }))
}

fn corrupt(reason: &'static str) -> nom::Err<CodecError> {
    nom::Err::Failure(CodecError::CorruptBatch(reason))
}

fn record(i: &[u8]) -> PResult<'_, Record<'_>> {
    let (i, len) = w::varint(i)?;
    if len < 0 || len as usize > i.len() {
        return Err(corrupt("record length exceeds the batch"));
    }
    let (body, rest) = i.split_at(len as usize);
    let (b, attributes) = w::i8(body)?;
    let (b, timestamp_delta) = w::varlong(b)?;
    let (b, offset_delta) = w::varint(b)?;
    let (b, key) = varint_bytes(b)?;
    let (b, value) = varint_bytes(b)?;
    let (b, count) = w::varint(b)?;
    // Each header takes at least two bytes: this bounds the count without walking them.
    if count < 0 || count as usize > b.len() / 2 {
        return Err(corrupt("header count exceeds the record"));
    }
    let mut h = b;
    for _ in 0..count {
        (h, _) = header(h)?;
    }
    if !h.is_empty() {
        return Err(corrupt("record length does not match its fields"));
    }
    let headers = RecordHeaders { data: b, count };
    Ok((
        rest,
        Record {
            attributes,
            timestamp_delta,
            offset_delta,
            key,
            value,
            headers,
        },
    ))
}

/// The (decompressed) records of a batch; iterate with [`Records::iter`].
#[derive(Clone, Debug)]
pub struct Records {
    data: Bytes,
    count: i32,
}

impl Records {
    /// The records, decoded one at a time; decoding stops after the first error.
    pub fn iter(&self) -> RecordIter<'_> {
        RecordIter {
            rest: &self.data,
            left: self.count,
            failed: false,
        }
    }

    /// Number of records the batch header announces.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Whether the batch holds no records.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Zero-copy `Bytes` for `part`, a slice of a record borrowed from these records.
    pub fn slice(&self, part: &[u8]) -> Bytes {
        Src::new(&self.data).slice(part)
    }
}

/// Iterator over the records of a batch.
pub struct RecordIter<'a> {
    rest: &'a [u8],
    left: i32,
    failed: bool,
}

impl<'a> Iterator for RecordIter<'a> {
    type Item = Result<Record<'a>, CodecError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        if self.left == 0 {
            if !self.rest.is_empty() {
                self.failed = true;
                return Some(Err(CodecError::CorruptBatch("bytes after the last record")));
            }
            return None;
        }
        match record(self.rest) {
            Ok((rest, r)) => {
                self.rest = rest;
                self.left -= 1;
                Some(Ok(r))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(super::finish_err(e)))
            }
        }
    }
}

/// A record to put in a new batch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewRecord {
    /// Timestamp minus the batch's base timestamp.
    pub timestamp_delta: i64,
    /// The key.
    pub key: Option<Bytes>,
    /// The value.
    pub value: Option<Bytes>,
    /// Headers as (key, value).
    pub headers: Vec<(Bytes, Option<Bytes>)>,
}

fn put_varint_bytes(buf: &mut BytesMut, b: Option<&Bytes>) {
    match b {
        None => w::put_varint(buf, -1),
        Some(b) => {
            w::put_varint(buf, b.len() as i32);
            buf.put_slice(b);
        }
    }
}

/// Encodes a v2 batch of `records` (offset deltas 0, 1, …) with `header`'s fields; the batch length,
/// last offset delta, record count, codec bits and CRC are computed here.
pub fn encode_batch(
    header: &BatchHeader,
    compression: Compression,
    records: &[NewRecord],
) -> Result<Bytes, CodecError> {
    let mut body = BytesMut::new();
    let mut rec = BytesMut::new();
    for (n, r) in records.iter().enumerate() {
        rec.clear();
        w::put_i8(&mut rec, 0);
        w::put_varlong(&mut rec, r.timestamp_delta);
        w::put_varint(&mut rec, n as i32);
        put_varint_bytes(&mut rec, r.key.as_ref());
        put_varint_bytes(&mut rec, r.value.as_ref());
        w::put_varint(&mut rec, r.headers.len() as i32);
        for (k, v) in &r.headers {
            put_varint_bytes(&mut rec, Some(k));
            put_varint_bytes(&mut rec, v.as_ref());
        }
        w::put_varint(&mut body, rec.len() as i32);
        body.put_slice(&rec);
    }
    let payload = compression.compress(&body)?;
    let total = BATCH_HEADER_LEN + payload.len();
    let batch_length =
        i32::try_from(total - LENGTH_END).map_err(|_| CodecError::TooLongToEncode(total))?;
    let mut out = BytesMut::with_capacity(total);
    out.put_i64(header.base_offset);
    out.put_i32(batch_length);
    out.put_i32(header.partition_leader_epoch);
    out.put_i8(2);
    out.put_u32(0); // CRC, filled in below
    out.put_i16(header.attributes.with_compression(compression).0);
    out.put_i32(records.len().saturating_sub(1) as i32);
    out.put_i64(header.base_timestamp);
    out.put_i64(header.max_timestamp);
    out.put_i64(header.producer_id);
    out.put_i16(header.producer_epoch);
    out.put_i32(header.base_sequence);
    out.put_i32(records.len() as i32);
    out.put_slice(&payload);
    let crc = crc32c::crc32c(&out[CRC_FROM..]);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    Ok(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(n: usize) -> Vec<NewRecord> {
        (0..n)
            .map(|i| NewRecord {
                timestamp_delta: i as i64,
                key: (i % 3 != 0).then(|| Bytes::from(format!("key-{i}"))),
                value: (i % 5 != 0).then(|| Bytes::from(vec![i as u8; i * 10])),
                headers: vec![
                    (Bytes::from_static(b"h"), Some(Bytes::from_static(b"v"))),
                    (Bytes::from_static(b"n"), None),
                ],
            })
            .collect()
    }

    fn header() -> BatchHeader {
        BatchHeader {
            base_offset: 0,
            base_timestamp: 1_700_000_000_000,
            max_timestamp: 1_700_000_000_009,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            ..Default::default()
        }
    }

    #[test]
    fn batches_round_trip_with_every_codec() {
        let records = sample(10);
        for c in Compression::ALL {
            let bytes = encode_batch(&header(), c, &records).unwrap();
            let batch = RecordBatch::parse(bytes).unwrap();
            assert_eq!(batch.header().attributes.compression().unwrap(), c);
            assert_eq!(batch.header().record_count, 10);
            assert_eq!(batch.header().last_offset_delta, 9);
            let records_data = batch.records(1 << 20).unwrap();
            let decoded: Vec<Record> = records_data.iter().collect::<Result<_, _>>().unwrap();
            for (n, (d, r)) in decoded.iter().zip(&records).enumerate() {
                assert_eq!(d.offset_delta, n as i32);
                assert_eq!(d.key, r.key.as_deref());
                assert_eq!(d.value, r.value.as_deref());
                let hs: Vec<Header> = d.headers.iter().collect();
                assert_eq!(hs.len(), 2);
                assert_eq!(hs[1].value, None);
            }
        }
    }

    #[test]
    fn crc_and_magic_are_checked() {
        let bytes = encode_batch(&header(), Compression::None, &sample(3)).unwrap();
        let mut bad = BytesMut::from(&bytes[..]);
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(matches!(
            RecordBatch::parse(bad.freeze()),
            Err(CodecError::CrcMismatch { .. })
        ));
        let mut v1 = BytesMut::from(&bytes[..]);
        v1[MAGIC_AT] = 1;
        assert_eq!(
            RecordBatch::parse(v1.clone().freeze()),
            Err(CodecError::UnsupportedMagic(1))
        );
        assert!(matches!(
            Batches::new(v1.freeze()).next(),
            Some(Err(CodecError::UnsupportedMagic(1)))
        ));
        // The base offset is outside the CRC: the broker may rewrite it.
        let mut moved = BytesMut::from(&bytes[..]);
        moved[..8].copy_from_slice(&42i64.to_be_bytes());
        assert_eq!(
            RecordBatch::parse(moved.freeze())
                .unwrap()
                .header()
                .base_offset,
            42
        );
    }

    #[test]
    fn concatenated_batches_split() {
        let a = encode_batch(&header(), Compression::Lz4, &sample(2)).unwrap();
        let b = encode_batch(&header(), Compression::Zstd, &sample(4)).unwrap();
        let mut both = BytesMut::new();
        both.put_slice(&a);
        both.put_slice(&b);
        let counts: Vec<i32> = Batches::new(both.freeze())
            .map(|b| b.unwrap().header().record_count)
            .collect();
        assert_eq!(counts, vec![2, 4]);
        let truncated = a.slice(..a.len() - 1);
        assert!(Batches::new(truncated).next().unwrap().is_err());
    }

    #[test]
    fn records_are_slices_of_the_batch() {
        let bytes = encode_batch(&header(), Compression::None, &sample(2)).unwrap();
        let batch = RecordBatch::parse(bytes.clone()).unwrap();
        let records = batch.records(1 << 20).unwrap();
        let r = records.iter().nth(1).unwrap().unwrap();
        let key = records.slice(r.key.unwrap());
        let base = bytes.as_ptr() as usize;
        assert!((key.as_ptr() as usize) >= base && (key.as_ptr() as usize) < base + bytes.len());
    }
}
