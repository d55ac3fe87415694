//! CBOR encoding of message bodies (ciborium; `serde_cbor` is unmaintained).

use serde::{de::DeserializeOwned, Serialize};

/// Errors turning a frame body into a typed message or back.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// "message body is not valid cbor for `{0}`": the bytes did not decode into the expected type.
    #[error("message body is not valid cbor for `{expected}`: {detail}")]
    Decode {
        /// The Rust type the body was meant to be.
        expected: &'static str,
        /// What the decoder reported.
        detail: String,
    },
    /// "message body has {0} trailing bytes": a valid message followed by garbage.
    #[error("message body has {0} trailing bytes")]
    TrailingBytes(usize),
    /// "could not encode message": serialization failed (a bug, not peer input).
    #[error("could not encode message: {0}")]
    Encode(String),
}

/// Encodes `value` as CBOR.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::new();
    ciborium::into_writer(value, &mut out).map_err(|e| CodecError::Encode(e.to_string()))?;
    Ok(out)
}

/// Decodes exactly one CBOR item of type `T`; trailing bytes are an error.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let mut cursor = std::io::Cursor::new(bytes);
    let value = ciborium::from_reader(&mut cursor).map_err(|e| CodecError::Decode {
        expected: std::any::type_name::<T>(),
        detail: e.to_string(),
    })?;
    let consumed = usize::try_from(cursor.position()).unwrap_or(usize::MAX);
    let trailing = bytes.len().saturating_sub(consumed);
    if trailing != 0 {
        return Err(CodecError::TrailingBytes(trailing));
    }
    Ok(value)
}
