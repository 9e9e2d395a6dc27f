//! The four compression codecs of Kafka record batches, each through the crate the ecosystem trusts.
//!
//! Decompression is bounded: output past `limit` bytes is an error, so a small hostile batch cannot
//! expand into gigabytes ("zip bomb"). Snappy accepts both the raw block form and the xerial framing
//! the Java client writes (magic `\x82SNAPPY\0`, then length-prefixed raw blocks).

use super::CodecError;
use bytes::Bytes;
use std::io::{Read, Write};

/// A record batch's compression codec (attribute bits 0-2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Compression {
    /// Uncompressed.
    None,
    /// gzip (RFC 1952).
    Gzip,
    /// Snappy: raw block, or the xerial framing.
    Snappy,
    /// LZ4 frame format.
    Lz4,
    /// Zstandard.
    Zstd,
}

impl Compression {
    /// Every codec.
    pub const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    /// The codec of attribute bits 0-2.
    pub fn from_id(id: u8) -> Result<Compression, CodecError> {
        Ok(match id {
            0 => Compression::None,
            1 => Compression::Gzip,
            2 => Compression::Snappy,
            3 => Compression::Lz4,
            4 => Compression::Zstd,
            other => return Err(CodecError::UnknownCompression(other)),
        })
    }

    /// The attribute bits of this codec.
    pub fn id(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }

    /// The codec's name, as Kafka configs spell it.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }

    /// Decompresses `data`, failing if the output would exceed `limit` bytes.
    pub fn decompress(self, data: &Bytes, limit: usize) -> Result<Bytes, CodecError> {
        let err = |reason: String| CodecError::Decompression {
            codec: self.name(),
            reason,
        };
        match self {
            Compression::None => Ok(data.clone()),
            Compression::Gzip => {
                read_bounded(flate2::read::MultiGzDecoder::new(&data[..]), limit, self)
            }
            Compression::Lz4 => {
                read_bounded(lz4_flex::frame::FrameDecoder::new(&data[..]), limit, self)
            }
            Compression::Zstd => {
                let mut decoder =
                    zstd::stream::read::Decoder::new(&data[..]).map_err(|e| err(e.to_string()))?;
                // Refuse frames asking for windows above 32 MiB: the window is allocated up front.
                decoder.window_log_max(25).map_err(|e| err(e.to_string()))?;
                read_bounded(decoder, limit, self)
            }
            Compression::Snappy => {
                if let Some(framed) = data.strip_prefix(XERIAL_MAGIC) {
                    snappy_xerial(framed, limit)
                } else {
                    snappy_block(data, limit).map(Bytes::from)
                }
            }
        }
    }

    /// Compresses `data` the way the Java client does (snappy in xerial framing).
    pub fn compress(self, data: &[u8]) -> Result<Bytes, CodecError> {
        let err = |e: std::io::Error| CodecError::Compression {
            codec: self.name(),
            reason: e.to_string(),
        };
        Ok(match self {
            Compression::None => Bytes::copy_from_slice(data),
            Compression::Gzip => {
                let mut enc =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                enc.write_all(data).map_err(err)?;
                enc.finish().map_err(err)?.into()
            }
            Compression::Lz4 => {
                let mut enc = lz4_flex::frame::FrameEncoder::new(Vec::new());
                enc.write_all(data).map_err(err)?;
                enc.finish()
                    .map_err(|e| CodecError::Compression {
                        codec: "lz4",
                        reason: e.to_string(),
                    })?
                    .into()
            }
            Compression::Zstd => zstd::bulk::compress(data, 3).map_err(err)?.into(),
            Compression::Snappy => {
                let mut out = Vec::with_capacity(data.len() / 2 + 32);
                out.extend_from_slice(XERIAL_MAGIC);
                out.extend_from_slice(&1i32.to_be_bytes()); // version
                out.extend_from_slice(&1i32.to_be_bytes()); // minimum compatible version
                let mut enc = snap::raw::Encoder::new();
                for chunk in data.chunks(XERIAL_BLOCK) {
                    let block = enc
                        .compress_vec(chunk)
                        .map_err(|e| err(std::io::Error::other(e)))?;
                    out.extend_from_slice(&(block.len() as i32).to_be_bytes());
                    out.extend_from_slice(&block);
                }
                out.into()
            }
        })
    }
}

const XERIAL_MAGIC: &[u8] = b"\x82SNAPPY\x00";
const XERIAL_BLOCK: usize = 32 * 1024;

fn read_bounded(reader: impl Read, limit: usize, codec: Compression) -> Result<Bytes, CodecError> {
    let mut out = Vec::new();
    let read = reader
        .take((limit as u64).saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| CodecError::Decompression {
            codec: codec.name(),
            reason: e.to_string(),
        })?;
    if read > limit {
        return Err(CodecError::DecompressedTooLarge { limit });
    }
    Ok(out.into())
}

fn snappy_block(block: &[u8], limit: usize) -> Result<Vec<u8>, CodecError> {
    let err = |e: snap::Error| CodecError::Decompression {
        codec: "snappy",
        reason: e.to_string(),
    };
    // The block states its decompressed length up front: check it before allocating.
    let len = snap::raw::decompress_len(block).map_err(err)?;
    if len > limit {
        return Err(CodecError::DecompressedTooLarge { limit });
    }
    snap::raw::Decoder::new().decompress_vec(block).map_err(err)
}

fn snappy_xerial(framed: &[u8], limit: usize) -> Result<Bytes, CodecError> {
    let corrupt = |reason: &str| CodecError::Decompression {
        codec: "snappy",
        reason: reason.to_string(),
    };
    // Version and minimum compatible version, 4 bytes each.
    let mut rest = framed
        .get(8..)
        .ok_or_else(|| corrupt("truncated xerial header"))?;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let (len, tail) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| corrupt("truncated block length"))?;
        let len = i32::from_be_bytes(*len);
        let len = usize::try_from(len).map_err(|_| corrupt("negative block length"))?;
        let block = tail
            .get(..len)
            .ok_or_else(|| corrupt("block longer than the data"))?;
        let part = snappy_block(block, limit - out.len())?;
        out.extend_from_slice(&part);
        rest = &tail[len..];
    }
    Ok(out.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_codec_round_trips() {
        let data: Vec<u8> = (0..100_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        for c in Compression::ALL {
            let packed = c.compress(&data).unwrap();
            assert_eq!(
                &c.decompress(&packed, data.len()).unwrap()[..],
                &data[..],
                "{c:?}"
            );
            if c != Compression::None {
                assert!(
                    matches!(
                        c.decompress(&packed, data.len() - 1),
                        Err(CodecError::DecompressedTooLarge { .. })
                    ),
                    "{c:?}"
                );
            }
        }
    }

    #[test]
    fn snappy_reads_raw_blocks_too() {
        let raw = snap::raw::Encoder::new()
            .compress_vec(b"hello hello hello")
            .unwrap();
        assert_eq!(
            &Compression::Snappy.decompress(&raw.into(), 100).unwrap()[..],
            b"hello hello hello"
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let junk = Bytes::from_static(b"\x82SNAPPY\x00\0\0\0\x01\0\0\0\x01\x7f\xff\xff\xffxx");
        for c in Compression::ALL {
            let _ = c.decompress(&junk, 1 << 20);
        }
        assert!(Compression::Snappy.decompress(&junk, 1 << 20).is_err());
    }
}
