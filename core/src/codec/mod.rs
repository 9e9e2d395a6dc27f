//! The Kafka wire codec: framing, headers, primitive types, record batches and compression.
//!
//! Nothing here performs I/O. Decoders take complete frames as `Bytes` and hand out zero-copy slices;
//! encoders write into `BytesMut`, or into an [`EncodeBuf`] that leaves record batches where they
//! are. Every failure is a [`CodecError`]; none panics, whatever the input.

pub mod compression;
pub mod encode_buf;
pub mod frame;
pub mod header;
pub mod record_batch;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod wire;

pub use encode_buf::{EncodeBuf, Frame, encode_frame_parts};
pub use frame::{FrameDecoder, encode_frame};
pub use header::{RequestHeader, ResponseHeader};
pub use wire::{KStr, RawTaggedField, Uuid};

/// An inclusive range of API versions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct VersionRange {
    /// Lowest version.
    pub min: i16,
    /// Highest version.
    pub max: i16,
}

impl VersionRange {
    /// Whether `version` lies in the range.
    pub const fn contains(self, version: i16) -> bool {
        version >= self.min && version <= self.max
    }
}

/// Everything that can be wrong with bytes on the wire, or with a value that cannot be encoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The input ended inside a field.
    #[error("input ends inside a field")]
    Truncated,
    /// A length or count that is negative (other than -1 for null).
    #[error("invalid length {0}")]
    InvalidLength(i64),
    /// A length or count larger than what is left of the input.
    #[error("length {len} exceeds the {left} bytes left")]
    LengthExceedsInput {
        /// The length read.
        len: u64,
        /// Bytes left in the input.
        left: usize,
    },
    /// Null where the version does not allow it.
    #[error("null value where none is allowed")]
    UnexpectedNull,
    /// A string that is not UTF-8.
    #[error("string is not valid UTF-8")]
    InvalidUtf8,
    /// A varint longer than its type allows.
    #[error("varint overflows its type")]
    VarintOverflow,
    /// Bytes left after a message or a tagged field.
    #[error("{0} unexpected bytes after the message")]
    TrailingBytes(usize),
    /// A tagged field repeated or out of ascending order.
    #[error("tagged field {0} repeated or out of order")]
    TaggedFieldOrder(u32),
    /// An API key Kelp does not speak.
    #[error("unknown API key {0}")]
    UnknownApiKey(i16),
    /// A version outside what Kelp supports for the API.
    #[error("unsupported version {version} of API {api_key}")]
    UnsupportedVersion {
        /// The API key.
        api_key: i16,
        /// The version asked for.
        version: i16,
    },
    /// A frame whose size prefix exceeds the configured maximum.
    #[error("frame of {size} bytes exceeds the limit of {limit}")]
    FrameTooLarge {
        /// The size announced.
        size: u64,
        /// The configured limit.
        limit: usize,
    },
    /// A negative frame size prefix.
    #[error("negative frame size {0}")]
    NegativeFrameSize(i32),
    /// A value too long for its length prefix.
    #[error("value of {0} bytes or elements is too long to encode")]
    TooLongToEncode(usize),
    /// A field left null at a version where it is not nullable.
    #[error("field {0} is null but not nullable at this version")]
    NullNotAllowed(&'static str),
    /// A record batch (or message set) with a magic other than 2.
    #[error("record batch magic {0} is not supported (only v2)")]
    UnsupportedMagic(i8),
    /// A record batch whose CRC-32C does not match its bytes.
    #[error("record batch CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch {
        /// The CRC in the batch header.
        stored: u32,
        /// The CRC of the bytes.
        computed: u32,
    },
    /// A record batch whose header fields contradict each other or its size.
    #[error("corrupt record batch: {0}")]
    CorruptBatch(&'static str),
    /// A compression codec id outside 0..=4.
    #[error("unknown compression codec {0}")]
    UnknownCompression(u8),
    /// Compressed data that does not decompress.
    #[error("{codec} decompression failed: {reason}")]
    Decompression {
        /// The codec's name.
        codec: &'static str,
        /// What the decompressor said.
        reason: String,
    },
    /// Decompressed data larger than the configured limit.
    #[error("decompressed batch exceeds the limit of {limit} bytes")]
    DecompressedTooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// Compression of outgoing data failed.
    #[error("{codec} compression failed: {reason}")]
    Compression {
        /// The codec's name.
        codec: &'static str,
        /// What the compressor said.
        reason: String,
    },
}

impl CodecError {
    /// The Kafka error code a client should see when this error is about data it sent inside a
    /// well-formed request (a record batch, a partition's records).
    ///
    /// Errors in the request structure itself have no code: Kafka closes the connection then.
    pub fn error_code(&self) -> crate::ErrorCode {
        use crate::ErrorCode as E;
        match self {
            // Kafka 4 answers magic 0/1 inside Produce v3+ with INVALID_RECORD.
            CodecError::UnsupportedMagic(_) => E::INVALID_RECORD,
            CodecError::UnknownCompression(_) => E::UNSUPPORTED_COMPRESSION_TYPE,
            CodecError::DecompressedTooLarge { .. } | CodecError::FrameTooLarge { .. } => {
                E::MESSAGE_TOO_LARGE
            }
            CodecError::UnsupportedVersion { .. } => E::UNSUPPORTED_VERSION,
            CodecError::UnknownApiKey(_) => E::INVALID_REQUEST,
            CodecError::TooLongToEncode(_)
            | CodecError::NullNotAllowed(_)
            | CodecError::Compression { .. } => E::UNKNOWN_SERVER_ERROR,
            CodecError::Truncated
            | CodecError::InvalidLength(_)
            | CodecError::LengthExceedsInput { .. }
            | CodecError::UnexpectedNull
            | CodecError::InvalidUtf8
            | CodecError::VarintOverflow
            | CodecError::TrailingBytes(_)
            | CodecError::TaggedFieldOrder(_)
            | CodecError::NegativeFrameSize(_)
            | CodecError::CrcMismatch { .. }
            | CodecError::CorruptBatch(_)
            | CodecError::Decompression { .. } => E::CORRUPT_MESSAGE,
        }
    }
}

impl<'a> nom::error::ParseError<&'a [u8]> for CodecError {
    fn from_error_kind(_input: &'a [u8], _kind: nom::error::ErrorKind) -> Self {
        // The only nom combinators used are byte takers and number readers over complete input,
        // which fail only when the input runs out.
        CodecError::Truncated
    }

    fn append(_input: &'a [u8], _kind: nom::error::ErrorKind, other: Self) -> Self {
        other
    }
}

/// Turns a nom failure into the codec error it carries.
pub(crate) fn finish_err(e: nom::Err<CodecError>) -> CodecError {
    match e {
        nom::Err::Error(e) | nom::Err::Failure(e) => e,
        nom::Err::Incomplete(_) => CodecError::Truncated,
    }
}
