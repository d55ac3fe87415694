//! Egress carried as HTTP/1.1: the enclave's OTLP/HTTP exports to one collector.
//!
//! The enclave has no network; its span exporter (`enclave/src/otel.rs`) writes plain
//! HTTP/1.1 `POST /v1/traces` requests on its connection to a host vsock port, and this
//! carry forwards each one to the rule's destination and carries the answer back. It is as
//! narrow as the OTLP/HTTP protocol allows:
//!
//! * the request line must be `POST /v1/traces|/v1/metrics|/v1/logs HTTP/1.1`; the head
//!   ends within [`MAX_HEAD_BYTES`] and must carry a `Content-Length` within the frame
//!   limit; `Transfer-Encoding` (chunked bodies) is refused;
//! * the answer's head is bounded the same way and its body must have a `Content-Length`
//!   within the frame limit (or be a `204`/`304`, which have none);
//! * one request at a time per connection, each taking a rate token; the first within the
//!   handshake timeout, later ones within the idle timeout; upstream connect and answer under
//!   the connect and response timeouts.
//!
//! Bytes are forwarded verbatim. A refusal closes the connection and is counted (the
//! exporter drops that batch and counts it; a collector never holds a governance call).

use super::metrics::Event;
use super::{Admitted, Site};
use crate::transport::{Connection, Transport};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

/// Longest request or response head (request line, status line and headers).
pub const MAX_HEAD_BYTES: usize = 8 * 1024;

/// OTLP/HTTP paths (OTLP specification, "OTLP/HTTP Request").
pub const OTLP_PATHS: [&str; 3] = ["/v1/traces", "/v1/metrics", "/v1/logs"];

/// Why an HTTP message was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HttpError {
    /// "http head is longer than 8 KiB".
    #[error("http head is longer than 8 KiB")]
    HeadTooLong,
    /// "http head is not valid".
    #[error("http head is not valid")]
    Malformed,
    /// "request line `{0}` is not an OTLP/HTTP export".
    #[error("request line `{0}` is not an OTLP/HTTP export")]
    NotOtlp(String),
    /// "http message has no content-length".
    #[error("http message has no content-length")]
    NoLength,
    /// "http body of {len} bytes is over the limit of {limit}".
    #[error("http body of {len} bytes is over the limit of {limit}")]
    Oversize {
        /// Declared length.
        len: u64,
        /// Limit.
        limit: usize,
    },
    /// "chunked transfer encoding is refused".
    #[error("chunked transfer encoding is refused")]
    Chunked,
}

/// One parsed message head.
#[derive(Debug, PartialEq, Eq)]
pub struct Head {
    /// The first line (request line or status line).
    pub first_line: String,
    /// Body length.
    pub content_length: usize,
    /// Whether either side asked to close after this exchange.
    pub close: bool,
}

/// Parses a head (the bytes before and including the blank line). `request` selects the
/// OTLP request-line check; a response's status line decides whether a body may be absent.
pub fn parse_head(head: &[u8], request: bool, limit: usize) -> Result<Head, HttpError> {
    let text = std::str::from_utf8(head).map_err(|_| HttpError::Malformed)?;
    let mut lines = text.split("\r\n");
    let first_line = lines.next().ok_or(HttpError::Malformed)?.to_owned();
    let mut bodyless = false;
    if request {
        let mut parts = first_line.split(' ');
        let ok = parts.next() == Some("POST")
            && parts.next().is_some_and(|p| OTLP_PATHS.contains(&p))
            && parts.next() == Some("HTTP/1.1")
            && parts.next().is_none();
        if !ok {
            return Err(HttpError::NotOtlp(first_line.chars().take(80).collect()));
        }
    } else {
        let mut parts = first_line.splitn(3, ' ');
        if !parts.next().is_some_and(|v| v.starts_with("HTTP/1.")) {
            return Err(HttpError::Malformed);
        }
        let code = parts.next().ok_or(HttpError::Malformed)?;
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(HttpError::Malformed);
        }
        bodyless = code == "204" || code == "304";
    }
    let mut length: Option<u64> = None;
    let mut close = false;
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':').ok_or(HttpError::Malformed)?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let n: u64 = value.parse().map_err(|_| HttpError::Malformed)?;
            if length.is_some_and(|l| l != n) {
                return Err(HttpError::Malformed);
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(HttpError::Chunked);
        } else if name.eq_ignore_ascii_case("connection") {
            close |= value.eq_ignore_ascii_case("close");
        }
    }
    let len = match (length, bodyless) {
        (Some(n), _) => n,
        (None, true) => 0,
        (None, false) => return Err(HttpError::NoLength),
    };
    let content_length = usize::try_from(len)
        .ok()
        .filter(|n| *n <= limit)
        .ok_or(HttpError::Oversize { len, limit })?;
    Ok(Head {
        first_line,
        content_length,
        close,
    })
}

/// Why reading one message ended.
#[derive(Debug)]
enum ReadEnd {
    /// Closed cleanly before a message began.
    Closed,
    /// Refused (counted as garbage or oversize).
    Refused(HttpError),
    /// Broken mid-message.
    Io,
}

/// Reads one whole message: head, then `Content-Length` bytes of body.
async fn read_message<R: AsyncRead + Unpin>(
    r: &mut R,
    request: bool,
    limit: usize,
) -> Result<(Vec<u8>, Head), ReadEnd> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i.saturating_add(4);
        }
        if buf.len() > MAX_HEAD_BYTES {
            return Err(ReadEnd::Refused(HttpError::HeadTooLong));
        }
        let n = r.read(&mut chunk).await.map_err(|_| ReadEnd::Io)?;
        if n == 0 {
            return Err(if buf.is_empty() {
                ReadEnd::Closed
            } else {
                ReadEnd::Io
            });
        }
        buf.extend_from_slice(chunk.get(..n).ok_or(ReadEnd::Io)?);
        // A request that cannot be a POST is refused at its first bytes, not at a timeout.
        let prefix = buf.len().min(5);
        if request && buf.get(..prefix) != b"POST ".get(..prefix) {
            let shown = String::from_utf8_lossy(buf.get(..buf.len().min(16)).unwrap_or_default());
            return Err(ReadEnd::Refused(HttpError::NotOtlp(shown.into_owned())));
        }
    };
    if head_end > MAX_HEAD_BYTES {
        return Err(ReadEnd::Refused(HttpError::HeadTooLong));
    }
    let head_bytes = buf.get(..head_end).ok_or(ReadEnd::Io)?;
    let head = parse_head(head_bytes, request, limit).map_err(ReadEnd::Refused)?;
    let total = head_end.saturating_add(head.content_length);
    if buf.len() > total {
        // Pipelined bytes past this message: not part of OTLP/HTTP's one-at-a-time use.
        return Err(ReadEnd::Refused(HttpError::Malformed));
    }
    let have = buf.len();
    buf.resize(total, 0);
    r.read_exact(buf.get_mut(have..).ok_or(ReadEnd::Io)?)
        .await
        .map_err(|_| ReadEnd::Io)?;
    Ok((buf, head))
}

/// Serves one guest connection carried as HTTP/1.1 (see the module documentation).
pub(crate) async fn serve_guest<T: Transport>(
    mut guest: Connection,
    mut admitted: Admitted,
    site: Arc<Site>,
    destination: Arc<T>,
) {
    let limits = Arc::clone(&site.shared.limits);
    let limit = usize::try_from(limits.frame_limit()).unwrap_or(usize::MAX);
    let peer = admitted.peer.clone();
    let mut upstream: Option<Connection> = None;
    let mut first = true;
    loop {
        let (deadline_ms, on_timeout) = if first {
            (limits.handshake_timeout_ms, Event::HandshakeTimeout)
        } else {
            (limits.idle_timeout_ms, Event::IdleTimeout)
        };
        let (request, head) = match timeout(
            Duration::from_millis(deadline_ms),
            read_message(&mut guest, true, limit),
        )
        .await
        {
            Err(_) => {
                site.count(on_timeout);
                return;
            }
            Ok(Ok(m)) => m,
            Ok(Err(ReadEnd::Refused(e))) => {
                site.count(match e {
                    HttpError::Oversize { .. } | HttpError::HeadTooLong => Event::RefusedOversize,
                    _ => Event::RefusedGarbage,
                });
                site.warn(&peer, "refused_http", format_args!("{e}"));
                return;
            }
            Ok(Err(ReadEnd::Closed | ReadEnd::Io)) => return,
        };
        first = false;
        if !admitted.take_token(&site) {
            return;
        }
        let exchanged = async {
            let conn = match &mut upstream {
                Some(c) => c,
                None => {
                    let c = timeout(
                        Duration::from_millis(limits.connect_timeout_ms),
                        destination.connect(),
                    )
                    .await
                    .map_err(|_| "the collector did not accept a connection in time".to_owned())?
                    .map_err(|e| format!("could not reach the collector: {e}"))?;
                    upstream.insert(c)
                }
            };
            timeout(Duration::from_millis(limits.response_timeout_ms), async {
                conn.write_all(&request)
                    .await
                    .map_err(|e| format!("could not send upstream: {e}"))?;
                read_message(conn, false, limit)
                    .await
                    .map_err(|e| format!("the collector's answer was refused: {e:?}"))
            })
            .await
            .map_err(|_| "the collector did not answer in time".to_owned())?
        }
        .await;
        match exchanged {
            Ok((response, answer)) => {
                site.count(Event::Forwarded);
                site.counters().add_bytes(true, request.len());
                site.counters().add_bytes(false, response.len());
                let written = timeout(
                    Duration::from_millis(limits.idle_timeout_ms),
                    guest.write_all(&response),
                )
                .await;
                if !matches!(written, Ok(Ok(()))) || head.close || answer.close {
                    return;
                }
            }
            Err(e) => {
                site.count(Event::UpstreamError);
                site.warn(&peer, "upstream_error", format_args!("{e}"));
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQ: &[u8] = b"POST /v1/traces HTTP/1.1\r\nHost: otlp\r\nContent-Type: application/x-protobuf\r\nContent-Length: 5\r\n\r\n";

    /// Every flipped bit and every truncation of a real export head is a typed refusal or a
    /// head that still names an OTLP path within the limit; never a panic.
    #[test]
    fn flipped_and_truncated_heads_are_refused_or_still_valid() {
        for i in 0..REQ.len() {
            for bit in 0..8 {
                let mut m = REQ.to_vec();
                m[i] ^= 1 << bit;
                if let Ok(h) = parse_head(&m, true, 1024) {
                    assert!(h.first_line.starts_with("POST /v1/"), "{:?}", h.first_line);
                    assert!(h.content_length <= 1024);
                }
            }
            if let Ok(h) = parse_head(&REQ[..i], true, 1024) {
                assert!(h.content_length <= 1024);
            }
        }
    }

    #[test]
    fn an_otlp_request_head_parses() {
        let h = parse_head(REQ, true, 1024).unwrap();
        assert_eq!(h.content_length, 5);
        assert!(!h.close);
        assert_eq!(h.first_line, "POST /v1/traces HTTP/1.1");
    }

    #[test]
    fn anything_but_an_otlp_export_is_refused() {
        let bad = |head: &str| parse_head(head.as_bytes(), true, 1024).unwrap_err();
        assert!(matches!(
            bad("GET /v1/traces HTTP/1.1\r\nContent-Length: 0\r\n\r\n"),
            HttpError::NotOtlp(_)
        ));
        assert!(matches!(
            bad("POST /admin HTTP/1.1\r\nContent-Length: 0\r\n\r\n"),
            HttpError::NotOtlp(_)
        ));
        assert_eq!(
            bad("POST /v1/traces HTTP/1.1\r\nHost: x\r\n\r\n"),
            HttpError::NoLength
        );
        assert_eq!(
            bad("POST /v1/traces HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            HttpError::Chunked
        );
        assert_eq!(
            bad("POST /v1/traces HTTP/1.1\r\nContent-Length: 2048\r\n\r\n"),
            HttpError::Oversize {
                len: 2048,
                limit: 1024
            }
        );
        assert_eq!(
            bad("POST /v1/traces HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
            HttpError::Malformed
        );
    }

    #[test]
    fn responses_need_a_length_unless_bodyless() {
        let h = parse_head(b"HTTP/1.1 204 No Content\r\n\r\n", false, 10).unwrap();
        assert_eq!(h.content_length, 0);
        assert_eq!(
            parse_head(b"HTTP/1.1 200 OK\r\n\r\n", false, 10).unwrap_err(),
            HttpError::NoLength
        );
        let h = parse_head(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n",
            false,
            10,
        )
        .unwrap();
        assert!(h.close && h.content_length == 2);
        assert_eq!(
            parse_head(b"SSH-2.0 x\r\n\r\n", false, 10).unwrap_err(),
            HttpError::Malformed
        );
    }

    #[tokio::test]
    async fn messages_are_read_whole_and_heads_are_bounded() {
        let mut msg = REQ.to_vec();
        msg.extend_from_slice(b"hello");
        let (bytes, head) = read_message(&mut msg.as_slice(), true, 1024).await.unwrap();
        assert_eq!(bytes, msg);
        assert_eq!(head.content_length, 5);
        assert!(matches!(
            read_message(&mut &b"\x00\x00\x00\x05hello"[..], true, 1024).await,
            Err(ReadEnd::Refused(HttpError::NotOtlp(_)))
        ));
        let long = format!(
            "POST /v1/traces HTTP/1.1\r\nX: {}\r\n\r\n",
            "a".repeat(9000)
        );
        assert!(matches!(
            read_message(&mut long.as_bytes(), true, 1024).await,
            Err(ReadEnd::Refused(HttpError::HeadTooLong))
        ));
        let mut two = msg.clone();
        two.extend_from_slice(&msg);
        assert!(matches!(
            read_message(&mut two.as_slice(), true, 1024).await,
            Err(ReadEnd::Refused(HttpError::Malformed))
        ));
    }
}
