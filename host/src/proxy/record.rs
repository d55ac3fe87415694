//! TLS records as the proxy sees them: framing only, never content.
//!
//! On a TLS route the proxy carries ciphertext between a client and the TLS server inside
//! the enclave. It cannot read a byte of the conversation, but it still parses the one
//! thing it can see, the 5-byte record header (RFC 8446 §5.1), so that it can apply the
//! same limits as on the frame route: a record larger than TLS allows (or than configured)
//! is refused before its body is read, a content type TLS 1.3 never sends is refused, and
//! a connection is cut at a record boundary, never in the middle of one.
//!
//! ```text
//! struct {
//!     ContentType type;                  // 1 byte: 20, 21, 22 or 23
//!     ProtocolVersion legacy_record_version; // 2 bytes: 0x0301 (first ClientHello) or 0x0303
//!     uint16 length;                     // at most 2^14 + 256 (TLSCiphertext)
//!     opaque fragment[length];
//! } TLSPlaintext / TLSCiphertext;
//! ```

use tokio::io::{AsyncRead, AsyncReadExt};

/// Bytes of a record header.
pub const HEADER_BYTES: usize = 5;

/// Record content types TLS 1.3 uses (RFC 8446 §5.1, B.1). Heartbeat (24) and anything
/// else is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentType {
    /// 20: sent once in middlebox-compatibility mode, body exactly `0x01`.
    ChangeCipherSpec,
    /// 21: alerts (plaintext before the handshake keys, else inside application data).
    Alert,
    /// 22: handshake messages in the clear (ClientHello, ServerHello, HelloRetryRequest).
    Handshake,
    /// 23: everything encrypted, handshake and application data alike.
    ApplicationData,
}

impl ContentType {
    fn from_byte(b: u8) -> Option<Self> {
        match b {
            20 => Some(ContentType::ChangeCipherSpec),
            21 => Some(ContentType::Alert),
            22 => Some(ContentType::Handshake),
            23 => Some(ContentType::ApplicationData),
            _ => None,
        }
    }
}

/// A record header that passed every check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    /// Content type.
    pub content_type: ContentType,
    /// Body length in bytes.
    pub length: u16,
}

/// Why a record was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// "record content type {0} is not one tls 1.3 sends".
    #[error("record content type {0} is not one tls 1.3 sends")]
    ContentType(u8),
    /// "record version {0:#06x} is not tls 1.0-1.2 framing".
    #[error("record version {0:#06x} is not tls 1.0-1.2 framing")]
    Version(u16),
    /// "record of {len} bytes exceeds the limit of {limit} bytes".
    #[error("record of {len} bytes exceeds the limit of {limit} bytes")]
    Oversize {
        /// Announced length.
        len: u16,
        /// Limit in force.
        limit: u32,
    },
    /// "empty {0:?} record": only application data may be empty (RFC 8446 §5.1).
    #[error("empty {0:?} record")]
    Empty(ContentType),
    /// "change_cipher_spec record is not the single byte 0x01".
    #[error("change_cipher_spec record is not the single byte 0x01")]
    ChangeCipherSpec,
}

/// Checks one record header against TLS 1.3's rules and `limit`.
pub fn parse_header(h: [u8; HEADER_BYTES], limit: u32) -> Result<RecordHeader, RecordError> {
    let [t, major, minor, len_hi, len_lo] = h;
    let content_type = ContentType::from_byte(t).ok_or(RecordError::ContentType(t))?;
    let version = u16::from_be_bytes([major, minor]);
    if !(0x0301..=0x0303).contains(&version) {
        return Err(RecordError::Version(version));
    }
    let length = u16::from_be_bytes([len_hi, len_lo]);
    if u32::from(length) > limit {
        return Err(RecordError::Oversize { len: length, limit });
    }
    match content_type {
        ContentType::ApplicationData => {}
        ContentType::ChangeCipherSpec if length != 1 => return Err(RecordError::ChangeCipherSpec),
        _ if length == 0 => return Err(RecordError::Empty(content_type)),
        _ => {}
    }
    Ok(RecordHeader {
        content_type,
        length,
    })
}

/// One whole record: its checked header and its bytes, header included, ready to forward.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The checked header.
    pub header: RecordHeader,
    /// Header and body as received.
    pub bytes: Vec<u8>,
}

/// Why no record could be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadRecordError {
    /// "the stream ended between records" (a clean end).
    #[error("the stream ended between records")]
    Closed,
    /// "the record was refused".
    #[error("the record was refused")]
    Refused(#[source] RecordError),
    /// "the stream broke inside a record".
    #[error("the stream broke inside a record")]
    Io(#[source] std::io::Error),
}

/// Reads one record from `r`: the header, checked before any body byte is read (so at most
/// `limit` body bytes are ever allocated), then exactly the body.
pub async fn read_record<R: AsyncRead + Unpin + ?Sized>(
    r: &mut R,
    limit: u32,
) -> Result<Record, ReadRecordError> {
    let mut h = [0u8; HEADER_BYTES];
    let mut got = 0;
    while got < HEADER_BYTES {
        let rest = h.get_mut(got..).unwrap_or_default();
        match r.read(rest).await.map_err(ReadRecordError::Io)? {
            0 if got == 0 => return Err(ReadRecordError::Closed),
            0 => {
                return Err(ReadRecordError::Io(
                    std::io::ErrorKind::UnexpectedEof.into(),
                ));
            }
            n => got += n,
        }
    }
    let header = parse_header(h, limit).map_err(ReadRecordError::Refused)?;
    let mut bytes = Vec::with_capacity(HEADER_BYTES + usize::from(header.length));
    bytes.extend_from_slice(&h);
    bytes.resize(HEADER_BYTES + usize::from(header.length), 0);
    if let Some(body) = bytes.get_mut(HEADER_BYTES..) {
        r.read_exact(body).await.map_err(ReadRecordError::Io)?;
    }
    Ok(Record { header, bytes })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: u32 = super::super::limits::TLS_MAX_RECORD_BYTES;

    fn header(t: u8, v: u16, len: u16) -> [u8; 5] {
        let [a, b] = v.to_be_bytes();
        let [c, d] = len.to_be_bytes();
        [t, a, b, c, d]
    }

    #[test]
    fn tls13_records_pass() {
        let ok = |h| parse_header(h, LIMIT).unwrap();
        assert_eq!(
            ok(header(22, 0x0301, 512)).content_type,
            ContentType::Handshake
        );
        assert_eq!(ok(header(20, 0x0303, 1)).length, 1);
        assert_eq!(ok(header(23, 0x0303, 0)).length, 0);
        assert_eq!(ok(header(23, 0x0303, 16_640)).length, 16_640);
        assert_eq!(ok(header(21, 0x0303, 2)).content_type, ContentType::Alert);
    }

    #[test]
    fn everything_else_is_refused_with_its_reason() {
        let err = |h| parse_header(h, LIMIT).unwrap_err();
        assert_eq!(err(header(24, 0x0303, 3)), RecordError::ContentType(24));
        assert_eq!(err(*b"GET /"), RecordError::ContentType(b'G'));
        assert_eq!(err(header(22, 0x0300, 3)), RecordError::Version(0x0300));
        assert_eq!(err(header(22, 0x0304, 3)), RecordError::Version(0x0304));
        assert_eq!(
            err(header(23, 0x0303, 16_641)),
            RecordError::Oversize {
                len: 16_641,
                limit: LIMIT
            }
        );
        assert_eq!(
            err(header(22, 0x0303, 0)),
            RecordError::Empty(ContentType::Handshake)
        );
        assert_eq!(err(header(20, 0x0303, 2)), RecordError::ChangeCipherSpec);
        assert!(matches!(
            parse_header(header(23, 0x0303, 101), 100),
            Err(RecordError::Oversize { len: 101, .. })
        ));
    }

    #[tokio::test]
    async fn records_are_read_whole_and_refused_before_their_body() {
        let mut input = Vec::new();
        input.extend_from_slice(&header(22, 0x0301, 3));
        input.extend_from_slice(b"abc");
        input.extend_from_slice(&header(23, 0x0303, 0));
        input.extend_from_slice(&header(23, 0x0303, 60_000));
        let mut r = &input[..];
        let rec = read_record(&mut r, LIMIT).await.unwrap();
        assert_eq!(rec.bytes, [22, 3, 1, 0, 3, b'a', b'b', b'c']);
        let rec = read_record(&mut r, LIMIT).await.unwrap();
        assert_eq!(rec.bytes.len(), HEADER_BYTES);
        assert!(matches!(
            read_record(&mut r, LIMIT).await,
            Err(ReadRecordError::Refused(RecordError::Oversize { .. }))
        ));
        let mut empty: &[u8] = &[];
        assert!(matches!(
            read_record(&mut empty, LIMIT).await,
            Err(ReadRecordError::Closed)
        ));
        let mut cut: &[u8] = &[23, 3, 3, 0, 9, 1, 2];
        assert!(matches!(
            read_record(&mut cut, LIMIT).await,
            Err(ReadRecordError::Io(_))
        ));
        let mut half_header: &[u8] = &[23, 3];
        assert!(matches!(
            read_record(&mut half_header, LIMIT).await,
            Err(ReadRecordError::Io(_))
        ));
    }
}
