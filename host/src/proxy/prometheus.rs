//! The counters as a Prometheus scrape target: `GET /metrics` over HTTP/1.1.
//!
//! Deliberately tiny: one request per connection, no keep-alive, no chunking, no bodies.
//! The request head is bounded ([`MAX_HEAD_BYTES`]) and read under a deadline
//! ([`HEAD_TIMEOUT_MS`]), at most [`MAX_SCRAPERS`] connections are served at once, and
//! [`parse_request_head`] is the only code that looks at the bytes (fuzzed as
//! `proxy_metrics_request`). Bind it to a loopback or management address: the counters say
//! how busy a kernel is, nothing more, but they are nobody else's business.

use super::metrics::{render_prometheus, Metrics};
use crate::transport::{Connection, Listener};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// Largest request head read.
pub const MAX_HEAD_BYTES: usize = 8 * 1024;
/// Time a scraper has to send its request head.
pub const HEAD_TIMEOUT_MS: u64 = 5_000;
/// Scrape connections served at once; more are closed unanswered.
pub const MAX_SCRAPERS: usize = 8;
/// The path served.
pub const METRICS_PATH: &str = "/metrics";
/// Content type of the Prometheus text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What a request head asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scrape {
    /// `GET /metrics` (a query string is ignored).
    Metrics,
    /// `HEAD /metrics`: headers only.
    MetricsHead,
    /// A well-formed request for another path.
    NotFound,
    /// A well-formed request with another method.
    MethodNotAllowed,
}

/// Why a request head was not understood.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    /// "request head is incomplete" (no blank line yet).
    #[error("request head is incomplete")]
    Incomplete,
    /// "request head exceeds {MAX_HEAD_BYTES} bytes".
    #[error("request head exceeds {MAX_HEAD_BYTES} bytes")]
    TooLarge,
    /// "request line is not `METHOD TARGET HTTP/1.x`".
    #[error("request line is not `METHOD TARGET HTTP/1.x`")]
    Malformed,
}

/// Parses the request line of a complete HTTP/1.x request head in `buf` (which may hold
/// more than the head). Headers are not interpreted.
pub fn parse_request_head(buf: &[u8]) -> Result<Scrape, HeadError> {
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .or_else(|| buf.windows(2).position(|w| w == b"\n\n"));
    let Some(end) = end else {
        return Err(if buf.len() >= MAX_HEAD_BYTES {
            HeadError::TooLarge
        } else {
            HeadError::Incomplete
        });
    };
    if end > MAX_HEAD_BYTES {
        return Err(HeadError::TooLarge);
    }
    let head = buf.get(..end).ok_or(HeadError::Malformed)?;
    let line_end = head.iter().position(|b| *b == b'\n').unwrap_or(head.len());
    let line = head.get(..line_end).ok_or(HeadError::Malformed)?;
    let line = std::str::from_utf8(line).map_err(|_| HeadError::Malformed)?;
    let line = line.strip_suffix('\r').unwrap_or(line);
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HeadError::Malformed);
    };
    if !matches!(version, "HTTP/1.0" | "HTTP/1.1")
        || method.is_empty()
        || !method.bytes().all(|b| b.is_ascii_uppercase())
        || !target.starts_with('/')
    {
        return Err(HeadError::Malformed);
    }
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    Ok(match (method, path == METRICS_PATH) {
        ("GET", true) => Scrape::Metrics,
        ("HEAD", true) => Scrape::MetricsHead,
        ("GET" | "HEAD", false) => Scrape::NotFound,
        _ => Scrape::MethodNotAllowed,
    })
}

fn response(status: &str, body: &str, send_body: bool) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {CONTENT_TYPE}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if send_body {
        out.extend_from_slice(body.as_bytes());
    }
    out
}

/// Answers one scrape connection.
async fn answer(mut conn: Connection, metrics: Arc<Metrics>) {
    let mut buf = Vec::with_capacity(1024);
    let read_head = async {
        let mut chunk = [0u8; 1024];
        loop {
            match parse_request_head(&buf) {
                Err(HeadError::Incomplete) => {}
                other => return other,
            }
            match conn.read(&mut chunk).await {
                Ok(0) | Err(_) => return Err(HeadError::Incomplete),
                Ok(n) => buf.extend_from_slice(chunk.get(..n).unwrap_or_default()),
            }
        }
    };
    let parsed = tokio::time::timeout(Duration::from_millis(HEAD_TIMEOUT_MS), read_head).await;
    let reply = match parsed {
        Err(_) | Ok(Err(HeadError::Incomplete)) => return,
        Ok(Err(HeadError::TooLarge)) => response("431 Request Header Fields Too Large", "", true),
        Ok(Err(HeadError::Malformed)) => response("400 Bad Request", "bad request\n", true),
        Ok(Ok(Scrape::Metrics)) => {
            response("200 OK", &render_prometheus(&metrics.snapshot()), true)
        }
        Ok(Ok(Scrape::MetricsHead)) => {
            response("200 OK", &render_prometheus(&metrics.snapshot()), false)
        }
        Ok(Ok(Scrape::NotFound)) => response("404 Not Found", "try /metrics\n", true),
        Ok(Ok(Scrape::MethodNotAllowed)) => response("405 Method Not Allowed", "", true),
    };
    let write = async {
        conn.write_all(&reply).await?;
        conn.shutdown().await
    };
    let _ = tokio::time::timeout(Duration::from_millis(HEAD_TIMEOUT_MS), write).await;
}

/// Serves scrapes on `listener` until aborted.
pub(crate) async fn serve(listener: Listener, metrics: Arc<Metrics>) {
    let slots = Arc::new(Semaphore::new(MAX_SCRAPERS));
    let mut tasks = JoinSet::new();
    loop {
        tokio::select! {
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            accepted = listener.accept() => {
                let Ok((conn, _)) = accepted else {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                    continue;
                };
                let m = Arc::clone(&metrics);
                tasks.spawn(async move {
                    answer(conn, m).await;
                    drop(slot);
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines_are_understood() {
        let p = |s: &str| parse_request_head(s.as_bytes());
        assert_eq!(
            p("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Ok(Scrape::Metrics)
        );
        assert_eq!(p("GET /metrics?x=1 HTTP/1.0\n\n"), Ok(Scrape::Metrics));
        assert_eq!(p("HEAD /metrics HTTP/1.1\r\n\r\n"), Ok(Scrape::MetricsHead));
        assert_eq!(p("GET / HTTP/1.1\r\n\r\n"), Ok(Scrape::NotFound));
        assert_eq!(
            p("POST /metrics HTTP/1.1\r\n\r\n"),
            Ok(Scrape::MethodNotAllowed)
        );
        assert_eq!(p("GET /metrics HTTP/1.1\r\n"), Err(HeadError::Incomplete));
        assert_eq!(p("GET /metrics HTTP/2\r\n\r\n"), Err(HeadError::Malformed));
        assert_eq!(p("GET metrics HTTP/1.1\r\n\r\n"), Err(HeadError::Malformed));
        assert_eq!(
            p("GET  /metrics HTTP/1.1\r\n\r\n"),
            Err(HeadError::Malformed)
        );
        assert_eq!(p("\x16\x03\x01\x00\x05\r\n\r\n"), Err(HeadError::Malformed));
        let big = format!(
            "GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n",
            "a".repeat(MAX_HEAD_BYTES)
        );
        assert_eq!(p(&big), Err(HeadError::TooLarge));
        assert_eq!(p(&"a".repeat(MAX_HEAD_BYTES)), Err(HeadError::TooLarge));
    }
}
