//! Kafka's primitive wire types: nom decoders over `&[u8]` and encoders into `BytesMut`.
//!
//! Decoders run on a complete frame (frames are split on their size prefix first), so running out of
//! input is a malformed message, never "wait for more bytes". Every length or count read from the wire
//! is checked against the bytes actually left before anything is allocated; strings and byte fields are
//! zero-copy slices of the frame's `Bytes` (through [`Src`]).
//!
//! "Flexible" versions (KIP-482) use compact lengths (unsigned varint of length + 1, 0 = null) and end
//! every struct with tagged fields; the generated message code passes that choice in as `flex`.

use super::CodecError;
pub use super::encode_buf::EncodeBuf;
use bytes::{BufMut, Bytes, BytesMut};
use nom::Parser;
use nom::bytes::complete::take;
use nom::number::complete as num;
use std::fmt;

/// Result of a decoder: the input left and the value, or a [`CodecError`].
pub type PResult<'a, T> = nom::IResult<&'a [u8], T, CodecError>;

/// The frame being decoded, so that decoders can hand out `Bytes` slices of it instead of copies.
#[derive(Clone, Copy)]
pub struct Src<'b> {
    base: &'b Bytes,
}

impl<'b> Src<'b> {
    /// A source over `base`; every slice passed to [`Src::slice`] must come from it.
    pub fn new(base: &'b Bytes) -> Self {
        Src { base }
    }

    /// The `Bytes` for `part`, a sub-slice of the frame: shares the frame's memory.
    pub fn slice(&self, part: &[u8]) -> Bytes {
        if part.is_empty() {
            return Bytes::new();
        }
        let base = self.base.as_ptr() as usize;
        let start = part.as_ptr() as usize;
        if start >= base && start + part.len() <= base + self.base.len() {
            self.base.slice_ref(part)
        } else {
            // Not reachable from the generated decoders; copying keeps a caller's mistake harmless.
            Bytes::copy_from_slice(part)
        }
    }
}

/// Runs `parser` over the whole of `body` and fails if bytes are left over.
pub fn complete<T>(
    body: &Bytes,
    parser: impl for<'a> FnOnce(&Src<'_>, &'a [u8]) -> PResult<'a, T>,
) -> Result<T, CodecError> {
    let src = Src::new(body);
    match parser(&src, body) {
        Ok(([], value)) => Ok(value),
        Ok((rest, _)) => Err(CodecError::TrailingBytes(rest.len())),
        Err(nom::Err::Error(e) | nom::Err::Failure(e)) => Err(e),
        Err(nom::Err::Incomplete(_)) => Err(CodecError::Truncated),
    }
}

/// Decodes a tagged field's value, which must use its whole declared size.
pub fn exact<'a, T>(
    data: &'a [u8],
    parser: impl FnOnce(&'a [u8]) -> PResult<'a, T>,
) -> Result<T, nom::Err<CodecError>> {
    let (rest, value) = parser(data)?;
    if rest.is_empty() {
        Ok(value)
    } else {
        Err(fail(CodecError::TrailingBytes(rest.len())))
    }
}

fn fail(e: CodecError) -> nom::Err<CodecError> {
    nom::Err::Failure(e)
}

/// A UTF-8 string held in `Bytes` (usually a slice of the request frame).
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KStr(Bytes);

impl KStr {
    /// The empty string.
    pub const EMPTY: KStr = KStr(Bytes::new());

    /// A string from static text, without copying.
    pub const fn from_static(s: &'static str) -> KStr {
        KStr(Bytes::from_static(s.as_bytes()))
    }

    /// Validates `bytes` as UTF-8.
    pub fn from_utf8(bytes: Bytes) -> Result<KStr, CodecError> {
        std::str::from_utf8(&bytes).map_err(|_| CodecError::InvalidUtf8)?;
        Ok(KStr(bytes))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // Invariant: the bytes were validated as UTF-8 (or came from a `str`) when the KStr was made.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The underlying bytes.
    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the string is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<&str> for KStr {
    fn from(s: &str) -> KStr {
        KStr(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl From<String> for KStr {
    fn from(s: String) -> KStr {
        KStr(Bytes::from(s))
    }
}

impl fmt::Debug for KStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for KStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<str> for KStr {
    fn eq(&self, other: &str) -> bool {
        self.0 == other.as_bytes()
    }
}

/// A 128-bit UUID as Kafka sends it (topic ids, member ids of KIP-848).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Uuid(pub [u8; 16]);

impl Uuid {
    /// The all-zero UUID, Kafka's "no id".
    pub const ZERO: Uuid = Uuid([0; 16]);
}

impl fmt::Debug for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// A tagged field Kelp does not know, kept so that it can be written back unchanged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawTaggedField {
    /// The tag number.
    pub tag: u32,
    /// The field's bytes, without tag and size.
    pub data: Bytes,
}

// ---- fixed-size numbers ----

/// INT8.
pub fn i8(i: &[u8]) -> PResult<'_, i8> {
    num::be_i8(i)
}
/// INT16.
pub fn i16(i: &[u8]) -> PResult<'_, i16> {
    num::be_i16(i)
}
/// INT32.
pub fn i32(i: &[u8]) -> PResult<'_, i32> {
    num::be_i32(i)
}
/// INT64.
pub fn i64(i: &[u8]) -> PResult<'_, i64> {
    num::be_i64(i)
}
/// UINT16.
pub fn u16(i: &[u8]) -> PResult<'_, u16> {
    num::be_u16(i)
}
/// UINT32.
pub fn u32(i: &[u8]) -> PResult<'_, u32> {
    num::be_u32(i)
}
/// FLOAT64.
pub fn f64(i: &[u8]) -> PResult<'_, f64> {
    num::be_f64(i)
}
/// BOOLEAN: any non-zero byte is true, as in Kafka's own reader.
pub fn boolean(i: &[u8]) -> PResult<'_, bool> {
    num::be_u8.map(|b| b != 0).parse(i)
}
/// UUID.
pub fn uuid(i: &[u8]) -> PResult<'_, Uuid> {
    take(16usize)
        .map(|b: &[u8]| Uuid(b.try_into().unwrap_or([0; 16])))
        .parse(i)
}

// ---- variable-length integers ----

/// UNSIGNED_VARINT (at most 5 bytes, 32 bits).
#[inline]
pub fn uvarint(i: &[u8]) -> PResult<'_, u32> {
    // Fast path: most lengths, deltas and counts fit in one byte.
    if let Some((&b, rest)) = i.split_first()
        && b < 0x80
    {
        return Ok((rest, u32::from(b)));
    }
    let mut value: u32 = 0;
    for (n, &b) in i.iter().enumerate().take(5) {
        if n == 4 && b > 0x0f {
            return Err(fail(CodecError::VarintOverflow));
        }
        value |= u32::from(b & 0x7f) << (7 * n);
        if b & 0x80 == 0 {
            return Ok((&i[n + 1..], value));
        }
    }
    Err(fail(if i.len() >= 5 {
        CodecError::VarintOverflow
    } else {
        CodecError::Truncated
    }))
}

/// An unsigned varint of up to 64 bits (at most 10 bytes).
#[inline]
pub fn uvarlong(i: &[u8]) -> PResult<'_, u64> {
    if let Some((&b, rest)) = i.split_first()
        && b < 0x80
    {
        return Ok((rest, u64::from(b)));
    }
    let mut value: u64 = 0;
    for (n, &b) in i.iter().enumerate().take(10) {
        if n == 9 && b > 0x01 {
            return Err(fail(CodecError::VarintOverflow));
        }
        value |= u64::from(b & 0x7f) << (7 * n);
        if b & 0x80 == 0 {
            return Ok((&i[n + 1..], value));
        }
    }
    Err(fail(if i.len() >= 10 {
        CodecError::VarintOverflow
    } else {
        CodecError::Truncated
    }))
}

/// VARINT (zig-zag, 32 bits).
#[inline]
pub fn varint(i: &[u8]) -> PResult<'_, i32> {
    let (i, v) = uvarint(i)?;
    Ok((i, ((v >> 1) as i32) ^ -((v & 1) as i32)))
}

/// VARLONG (zig-zag, 64 bits).
#[inline]
pub fn varlong(i: &[u8]) -> PResult<'_, i64> {
    let (i, v) = uvarlong(i)?;
    Ok((i, ((v >> 1) as i64) ^ -((v & 1) as i64)))
}

// ---- length-prefixed types ----

/// Reads a length prefix: `Some(len)` or `None` for null. Lengths are checked against the input left.
fn length(i: &[u8], flex: bool, wide: bool) -> PResult<'_, Option<usize>> {
    let (rest, len) = if flex {
        let (rest, n) = uvarint(i)?;
        (rest, i64::from(n) - 1)
    } else if wide {
        let (rest, n) = i32(i)?;
        (rest, i64::from(n))
    } else {
        let (rest, n) = i16(i)?;
        (rest, i64::from(n))
    };
    match len {
        -1 => Ok((rest, None)),
        n if n < 0 => Err(fail(CodecError::InvalidLength(n))),
        n if n as u64 > rest.len() as u64 => Err(fail(CodecError::LengthExceedsInput {
            len: n as u64,
            left: rest.len(),
        })),
        n => Ok((rest, Some(n as usize))),
    }
}

fn null_is_error<T>(r: PResult<'_, Option<T>>) -> PResult<'_, T> {
    match r? {
        (rest, Some(v)) => Ok((rest, v)),
        (_, None) => Err(fail(CodecError::UnexpectedNull)),
    }
}

/// (COMPACT_)NULLABLE_STRING.
pub fn nullable_string<'a>(src: &Src<'_>, i: &'a [u8], flex: bool) -> PResult<'a, Option<KStr>> {
    let (i, len) = length(i, flex, false)?;
    let Some(len) = len else { return Ok((i, None)) };
    let (rest, raw) = take(len).parse(i)?;
    let s = KStr::from_utf8(src.slice(raw)).map_err(fail)?;
    Ok((rest, Some(s)))
}

/// (COMPACT_)STRING.
pub fn string<'a>(src: &Src<'_>, i: &'a [u8], flex: bool) -> PResult<'a, KStr> {
    null_is_error(nullable_string(src, i, flex))
}

/// (COMPACT_)NULLABLE_BYTES, also RECORDS.
pub fn nullable_bytes<'a>(src: &Src<'_>, i: &'a [u8], flex: bool) -> PResult<'a, Option<Bytes>> {
    let (i, len) = length(i, flex, true)?;
    let Some(len) = len else { return Ok((i, None)) };
    let (rest, raw) = take(len).parse(i)?;
    Ok((rest, Some(src.slice(raw))))
}

/// (COMPACT_)BYTES.
pub fn bytes<'a>(src: &Src<'_>, i: &'a [u8], flex: bool) -> PResult<'a, Bytes> {
    null_is_error(nullable_bytes(src, i, flex))
}

/// (COMPACT_)NULLABLE ARRAY of elements decoded by `elem`, each at least `min_size` bytes long.
pub fn nullable_array<'a, T>(
    i: &'a [u8],
    flex: bool,
    min_size: usize,
    mut elem: impl FnMut(&'a [u8]) -> PResult<'a, T>,
) -> PResult<'a, Option<Vec<T>>> {
    let (mut i, count) = if flex {
        let (rest, n) = uvarint(i)?;
        (rest, i64::from(n) - 1)
    } else {
        let (rest, n) = i32(i)?;
        (rest, i64::from(n))
    };
    if count == -1 {
        return Ok((i, None));
    }
    if count < 0 {
        return Err(fail(CodecError::InvalidLength(count)));
    }
    // The count cannot promise more elements than the bytes left can hold.
    let count = count as u64;
    if count.saturating_mul(min_size.max(1) as u64) > i.len() as u64 {
        return Err(fail(CodecError::LengthExceedsInput {
            len: count,
            left: i.len(),
        }));
    }
    let mut out = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let (rest, v) = elem(i)?;
        i = rest;
        out.push(v);
    }
    Ok((i, Some(out)))
}

/// (COMPACT_)ARRAY.
pub fn array<'a, T>(
    i: &'a [u8],
    flex: bool,
    min_size: usize,
    elem: impl FnMut(&'a [u8]) -> PResult<'a, T>,
) -> PResult<'a, Vec<T>> {
    null_is_error(nullable_array(i, flex, min_size, elem))
}

/// A nullable struct: an INT8 marker (-1 null, 1 present) before the struct.
pub fn nullable_struct<'a, T>(
    i: &'a [u8],
    body: impl FnOnce(&'a [u8]) -> PResult<'a, T>,
) -> PResult<'a, Option<T>> {
    let (i, marker) = i8(i)?;
    if marker < 0 {
        return Ok((i, None));
    }
    let (i, v) = body(i)?;
    Ok((i, Some(v)))
}

/// One tagged field's tag and data (the data's size is checked against the input left).
///
/// Tags must come in strictly ascending order (KIP-482); `last` carries the previous tag of the
/// same struct. Refusing repeats and disorder keeps decode -> encode -> decode stable.
pub fn tagged_field<'a>(i: &'a [u8], last: &mut Option<u32>) -> PResult<'a, (u32, &'a [u8])> {
    let (i, tag) = uvarint(i)?;
    if last.is_some_and(|prev| tag <= prev) {
        return Err(fail(CodecError::TaggedFieldOrder(tag)));
    }
    *last = Some(tag);
    let (i, size) = uvarint(i)?;
    if size as usize > i.len() {
        return Err(fail(CodecError::LengthExceedsInput {
            len: u64::from(size),
            left: i.len(),
        }));
    }
    let (data, rest) = i.split_at(size as usize);
    Ok((rest, (tag, data)))
}

// ---- encoders ----

/// Writes an INT8.
pub fn put_i8(buf: &mut BytesMut, v: i8) {
    buf.put_i8(v);
}
/// Writes an INT16.
pub fn put_i16(buf: &mut BytesMut, v: i16) {
    buf.put_i16(v);
}
/// Writes an INT32.
pub fn put_i32(buf: &mut BytesMut, v: i32) {
    buf.put_i32(v);
}
/// Writes an INT64.
pub fn put_i64(buf: &mut BytesMut, v: i64) {
    buf.put_i64(v);
}
/// Writes a UINT16.
pub fn put_u16(buf: &mut BytesMut, v: u16) {
    buf.put_u16(v);
}
/// Writes a UINT32.
pub fn put_u32(buf: &mut BytesMut, v: u32) {
    buf.put_u32(v);
}
/// Writes a FLOAT64.
pub fn put_f64(buf: &mut BytesMut, v: f64) {
    buf.put_f64(v);
}
/// Writes a BOOLEAN.
pub fn put_boolean(buf: &mut BytesMut, v: bool) {
    buf.put_u8(u8::from(v));
}
/// Writes a UUID.
pub fn put_uuid(buf: &mut BytesMut, v: Uuid) {
    buf.put_slice(&v.0);
}

/// Writes an UNSIGNED_VARINT.
pub fn put_uvarint(buf: &mut BytesMut, mut v: u32) {
    while v >= 0x80 {
        buf.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

/// Writes an unsigned varint of up to 64 bits.
pub fn put_uvarlong(buf: &mut BytesMut, mut v: u64) {
    while v >= 0x80 {
        buf.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

/// Writes a VARINT (zig-zag).
pub fn put_varint(buf: &mut BytesMut, v: i32) {
    put_uvarint(buf, ((v << 1) ^ (v >> 31)) as u32);
}

/// Writes a VARLONG (zig-zag).
pub fn put_varlong(buf: &mut BytesMut, v: i64) {
    put_uvarlong(buf, ((v << 1) ^ (v >> 63)) as u64);
}

/// Size of `v` as an unsigned varint.
pub fn uvarint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

/// Size of `v` as a zig-zag varint/varlong.
pub fn varlong_len(v: i64) -> usize {
    uvarint_len(((v << 1) ^ (v >> 63)) as u64)
}

/// Writes the null marker of a string (INT16 -1 when not flexible).
pub fn put_null_string(buf: &mut BytesMut, flex: bool) {
    if flex { buf.put_u8(0) } else { buf.put_i16(-1) }
}

/// Writes the null marker of a bytes, records or array field (INT32 -1 when not flexible).
pub fn put_null_bytes(buf: &mut BytesMut, flex: bool) {
    if flex { buf.put_u8(0) } else { buf.put_i32(-1) }
}

/// Writes a length prefix: compact (length + 1) when flexible, else INT32 (`wide`) or INT16.
fn put_len(buf: &mut BytesMut, len: usize, flex: bool, wide: bool) -> Result<(), CodecError> {
    let max = match (flex, wide) {
        (true, _) => u32::MAX as usize - 1,
        (false, true) => i32::MAX as usize,
        (false, false) => i16::MAX as usize,
    };
    if len > max {
        return Err(CodecError::TooLongToEncode(len));
    }
    match (flex, wide) {
        (true, _) => put_uvarint(buf, len as u32 + 1),
        (false, true) => buf.put_i32(len as i32),
        (false, false) => buf.put_i16(len as i16),
    }
    Ok(())
}

/// Writes a (COMPACT_)STRING.
pub fn put_string(buf: &mut BytesMut, v: &KStr, flex: bool) -> Result<(), CodecError> {
    put_len(buf, v.len(), flex, false)?;
    buf.put_slice(v.as_bytes());
    Ok(())
}

/// Writes (COMPACT_)BYTES (also RECORDS).
pub fn put_bytes(buf: &mut BytesMut, v: &Bytes, flex: bool) -> Result<(), CodecError> {
    put_len(buf, v.len(), flex, true)?;
    buf.put_slice(v);
    Ok(())
}

/// Writes a RECORDS field (COMPACT_RECORDS), splicing it in if `buf` does.
pub fn put_records(buf: &mut EncodeBuf, v: &Bytes, flex: bool) -> Result<(), CodecError> {
    put_len(buf, v.len(), flex, true)?;
    buf.put_records(v);
    Ok(())
}

/// Writes a (COMPACT_)ARRAY's element count.
pub fn put_array_len(buf: &mut BytesMut, len: usize, flex: bool) -> Result<(), CodecError> {
    put_len(buf, len, flex, true)
}

/// Collects a struct's tagged fields, then writes them sorted by tag, merged with unknown ones.
#[derive(Default)]
pub struct TaggedWriter {
    fields: Vec<(u32, EncodeBuf)>,
}

impl TaggedWriter {
    /// Starts the field `tag`; encode its value into the returned buffer.
    pub fn start(&mut self, tag: u32) -> &mut EncodeBuf {
        self.fields.push((tag, EncodeBuf::default()));
        let last = self.fields.len() - 1;
        &mut self.fields[last].1
    }

    /// Writes the count and every field in ascending tag order.
    pub fn finish(self, buf: &mut BytesMut, unknown: &[RawTaggedField]) -> Result<(), CodecError> {
        let total = self.fields.len() + unknown.len();
        put_uvarint(
            buf,
            u32::try_from(total).map_err(|_| CodecError::TooLongToEncode(total))?,
        );
        if unknown.is_empty() {
            // Known fields are started in ascending tag order by the generated code.
            for (tag, data) in &self.fields {
                put_tagged(buf, *tag, data)?;
            }
            return Ok(());
        }
        let mut all: Vec<(u32, &[u8])> = self.fields.iter().map(|(t, d)| (*t, &d[..])).collect();
        all.extend(unknown.iter().map(|u| (u.tag, &u.data[..])));
        all.sort_by_key(|(tag, _)| *tag);
        for (tag, data) in all {
            put_tagged(buf, tag, data)?;
        }
        Ok(())
    }
}

fn put_tagged(buf: &mut BytesMut, tag: u32, data: &[u8]) -> Result<(), CodecError> {
    put_uvarint(buf, tag);
    put_uvarint(
        buf,
        u32::try_from(data.len()).map_err(|_| CodecError::TooLongToEncode(data.len()))?,
    );
    buf.put_slice(data);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_and_reject_overflow() {
        for v in [0u32, 1, 127, 128, 16383, 16384, u32::MAX] {
            let mut b = BytesMut::new();
            put_uvarint(&mut b, v);
            assert_eq!(b.len(), uvarint_len(u64::from(v)));
            assert_eq!(uvarint(&b).unwrap(), (&[][..], v));
        }
        for v in [0i64, -1, 1, i64::MIN, i64::MAX, 300, -300] {
            let mut b = BytesMut::new();
            put_varlong(&mut b, v);
            assert_eq!(b.len(), varlong_len(v));
            assert_eq!(varlong(&b).unwrap().1, v);
        }
        assert!(uvarint(&[0xff, 0xff, 0xff, 0xff, 0x1f]).is_err());
        assert!(uvarint(&[0x80]).is_err());
        assert!(uvarlong(&[0xff; 11]).is_err());
    }

    #[test]
    fn lengths_are_checked_before_use() {
        let frame = Bytes::from_static(&[0x7f, 0xff, b'a']);
        let src = Src::new(&frame);
        assert!(matches!(
            string(&src, &frame, false),
            Err(nom::Err::Failure(CodecError::LengthExceedsInput { .. }))
        ));
        let neg = Bytes::from_static(&[0xff, 0xfe]);
        assert!(matches!(
            nullable_string(&Src::new(&neg), &neg, false),
            Err(nom::Err::Failure(CodecError::InvalidLength(-2)))
        ));
        let null = Bytes::from_static(&[0xff, 0xff]);
        assert_eq!(
            nullable_string(&Src::new(&null), &null, false).unwrap().1,
            None
        );
        assert!(string(&Src::new(&null), &null, false).is_err());
        // An array count far beyond the input is refused before any allocation.
        let huge = [0x7f, 0xff, 0xff, 0xff, 0, 0];
        assert!(array(&huge, false, 4, i32).is_err());
    }

    #[test]
    fn tagged_fields_must_ascend() {
        let mut last = None;
        let (rest, (tag, data)) = tagged_field(&[3, 1, 9, 3, 0], &mut last).unwrap();
        assert_eq!((tag, data), (3, &[9u8][..]));
        assert!(matches!(
            tagged_field(rest, &mut last),
            Err(nom::Err::Failure(CodecError::TaggedFieldOrder(3)))
        ));
    }

    #[test]
    fn strings_are_slices_of_the_frame() {
        let frame = Bytes::from_static(&[0, 3, b'a', b'b', b'c']);
        let src = Src::new(&frame);
        let (_, s) = string(&src, &frame, false).unwrap();
        assert_eq!(s.as_str(), "abc");
        assert_eq!(s.as_bytes().as_ptr(), frame[2..].as_ptr());
    }
}
