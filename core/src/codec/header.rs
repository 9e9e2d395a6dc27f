//! Request and response headers, and whole request/response messages.
//!
//! Which header version a message uses follows from one rule over the API table: flexible versions
//! use request header v2 and response header v1, older ones request header v1 and response header v0.
//! The one exception Kafka makes: ApiVersions responses always use header v0, so that a client can
//! read the answer even when it asked for a version the broker does not know.

use super::wire::{self as w, KStr, PResult, RawTaggedField, Src};
use super::{CodecError, finish_err};
use crate::api::{ApiKey, RequestBody, ResponseBody};
use bytes::{Bytes, BytesMut};

/// The header every request starts with.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RequestHeader {
    /// The API key.
    pub api_key: i16,
    /// The API version.
    pub api_version: i16,
    /// Echoed in the response; clients match responses to requests with it.
    pub correlation_id: i32,
    /// The client's self-chosen id (header v1+, never compact).
    pub client_id: Option<KStr>,
    /// Tagged fields of header v2 that Kelp does not know.
    pub unknown_tagged_fields: Vec<RawTaggedField>,
}

/// The fixed start of every request header, readable even when the API or version is unknown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestPrefix {
    /// The API key.
    pub api_key: i16,
    /// The API version.
    pub api_version: i16,
    /// The correlation id to answer with.
    pub correlation_id: i32,
}

impl RequestPrefix {
    /// Reads the first 8 bytes of a request frame.
    pub fn peek(frame: &[u8]) -> Result<RequestPrefix, CodecError> {
        let (i, api_key) = w::i16(frame).map_err(finish_err)?;
        let (i, api_version) = w::i16(i).map_err(finish_err)?;
        let (_, correlation_id) = w::i32(i).map_err(finish_err)?;
        Ok(RequestPrefix {
            api_key,
            api_version,
            correlation_id,
        })
    }
}

/// The request header version used by `version` of `api`.
pub fn request_header_version(api: ApiKey, version: i16) -> i16 {
    if api.is_flexible(version) { 2 } else { 1 }
}

/// The response header version used by `version` of `api`.
pub fn response_header_version(api: ApiKey, version: i16) -> i16 {
    if api != ApiKey::ApiVersions && api.is_flexible(version) {
        1
    } else {
        0
    }
}

impl RequestHeader {
    /// Decodes a header of `header_version` (1 or 2).
    pub fn decode<'a>(src: &Src<'_>, i: &'a [u8], header_version: i16) -> PResult<'a, Self> {
        let (i, api_key) = w::i16(i)?;
        let (i, api_version) = w::i16(i)?;
        let (i, correlation_id) = w::i32(i)?;
        let (mut i, client_id) = w::nullable_string(src, i, false)?;
        let mut unknown_tagged_fields = Vec::new();
        if header_version >= 2 {
            let count;
            (i, count) = w::uvarint(i)?;
            let mut last = None;
            for _ in 0..count {
                let (tag, data);
                (i, (tag, data)) = w::tagged_field(i, &mut last)?;
                unknown_tagged_fields.push(RawTaggedField {
                    tag,
                    data: src.slice(data),
                });
            }
        }
        Ok((
            i,
            RequestHeader {
                api_key,
                api_version,
                correlation_id,
                client_id,
                unknown_tagged_fields,
            },
        ))
    }

    /// Encodes the header at `header_version` (1 or 2).
    pub fn encode(&self, buf: &mut BytesMut, header_version: i16) -> Result<(), CodecError> {
        w::put_i16(buf, self.api_key);
        w::put_i16(buf, self.api_version);
        w::put_i32(buf, self.correlation_id);
        match &self.client_id {
            Some(id) => w::put_string(buf, id, false)?,
            None => w::put_null_string(buf, false),
        }
        if header_version >= 2 {
            w::TaggedWriter::default().finish(buf, &self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

/// The header every response starts with.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ResponseHeader {
    /// The request's correlation id.
    pub correlation_id: i32,
    /// Tagged fields of header v1 that Kelp does not know.
    pub unknown_tagged_fields: Vec<RawTaggedField>,
}

impl ResponseHeader {
    /// Decodes a header of `header_version` (0 or 1).
    pub fn decode<'a>(src: &Src<'_>, i: &'a [u8], header_version: i16) -> PResult<'a, Self> {
        let (mut i, correlation_id) = w::i32(i)?;
        let mut unknown_tagged_fields = Vec::new();
        if header_version >= 1 {
            let count;
            (i, count) = w::uvarint(i)?;
            let mut last = None;
            for _ in 0..count {
                let (tag, data);
                (i, (tag, data)) = w::tagged_field(i, &mut last)?;
                unknown_tagged_fields.push(RawTaggedField {
                    tag,
                    data: src.slice(data),
                });
            }
        }
        Ok((
            i,
            ResponseHeader {
                correlation_id,
                unknown_tagged_fields,
            },
        ))
    }

    /// Encodes the header at `header_version` (0 or 1).
    pub fn encode(&self, buf: &mut BytesMut, header_version: i16) -> Result<(), CodecError> {
        w::put_i32(buf, self.correlation_id);
        if header_version >= 1 {
            w::TaggedWriter::default().finish(buf, &self.unknown_tagged_fields)?;
        }
        Ok(())
    }
}

/// A whole request: header and body.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// The header.
    pub header: RequestHeader,
    /// The body, of the API the header names.
    pub body: RequestBody,
}

impl Request {
    /// Decodes a request frame (without its size prefix).
    ///
    /// An unknown API key or an unsupported version is reported as such, so that the caller can
    /// answer with the right Kafka error using [`RequestPrefix::peek`].
    ///
    /// Bytes after the body are ignored, as Apache Kafka ignores them: librdkafka 2.x sends three
    /// extra bytes after its "all topics" Metadata v13 request, and a strict parser would refuse it.
    ///
    /// Bytes after the body are ignored, as Apache Kafka ignores them: librdkafka 2.x sends three
    /// extra bytes after its "all topics" Metadata v13 request, and a strict parser would refuse it.
    pub fn decode(frame: &Bytes) -> Result<Request, CodecError> {
        let prefix = RequestPrefix::peek(frame)?;
        let api =
            ApiKey::from_code(prefix.api_key).ok_or(CodecError::UnknownApiKey(prefix.api_key))?;
        if !api.versions().contains(prefix.api_version) {
            return Err(CodecError::UnsupportedVersion {
                api_key: prefix.api_key,
                version: prefix.api_version,
            });
        }
        let src = Src::new(frame);
        let header_version = request_header_version(api, prefix.api_version);
        let (i, header) = RequestHeader::decode(&src, frame, header_version).map_err(finish_err)?;
        let (_ignored, body) =
            RequestBody::decode(api, prefix.api_version, &src, i).map_err(finish_err)?;
        Ok(Request { header, body })
    }

    /// Encodes header and body (without the size prefix) at the header's version.
    pub fn encode(&self, buf: &mut BytesMut) -> Result<(), CodecError> {
        let api = self.body.api_key();
        let version = self.header.api_version;
        self.header
            .encode(buf, request_header_version(api, version))?;
        self.body.encode(buf, version)
    }
}

/// A whole response: header and body.
#[derive(Clone, Debug, PartialEq)]
pub struct Response {
    /// The header.
    pub header: ResponseHeader,
    /// The body.
    pub body: ResponseBody,
}

impl Response {
    /// Decodes a response frame to a request of `api` at `version` (responses do not name their API).
    pub fn decode(frame: &Bytes, api: ApiKey, version: i16) -> Result<Response, CodecError> {
        w::complete(frame, |src, i| {
            let (i, header) =
                ResponseHeader::decode(src, i, response_header_version(api, version))?;
            let (i, body) = ResponseBody::decode(api, version, src, i)?;
            Ok((i, Response { header, body }))
        })
    }

    /// Encodes header and body (without the size prefix) for `version`.
    pub fn encode(&self, buf: &mut BytesMut, version: i16) -> Result<(), CodecError> {
        w::EncodeBuf::copying_into(buf, |b| self.encode_to(b, version))
    }

    /// Encodes header and body (without the size prefix) for `version` into `buf`, which may
    /// splice the record batches of a fetch response in.
    pub fn encode_to(&self, buf: &mut w::EncodeBuf, version: i16) -> Result<(), CodecError> {
        self.header
            .encode(buf, response_header_version(self.body.api_key(), version))?;
        self.body.encode_to(buf, version)
    }
}
