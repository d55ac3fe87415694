//! The TLS route: ciphertext carried record by record between a peer and a TLS server.
//!
//! Inbound, the peer is a client and the server is the enclave's TLS port; on an egress
//! route carried as records, the peer is the enclave (a kernel calling a peer kernel over
//! mutually attested TLS) and the server is the destination. Either way the proxy reads
//! only record headers ([`super::record`]); it cannot see methods, so the method allowlist
//! does not apply here and the enclave enforces what may be called. What the proxy does
//! enforce:
//!
//! * the first record from the peer is a handshake record (a ClientHello), else the
//!   connection is refused as garbage before any upstream connection is made;
//! * every record's type, version and size are TLS 1.3's, within the record limit;
//! * the handshake finishes within the handshake timeout. The proxy cannot see the
//!   handshake messages, so "finished" is the first encrypted record from the peer after the
//!   server's first encrypted record: in TLS 1.3 that is the client's `Finished` (RFC 8446
//!   §2). A slow-loris client that trickles its handshake loses its slot;
//! * after that, at least one whole record every idle timeout;
//! * every record from the peer takes a token from the connection's and the peer's bucket.
//!
//! A refusal cannot be answered in-band (the proxy holds no TLS keys and must not forge an
//! alert), so it closes the connection and is counted.

use super::metrics::Event;
use super::record::{read_record, ContentType, ReadRecordError, Record};
use super::{Admitted, Site};
use crate::transport::{Connection, Peer, Transport};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, ReadHalf, WriteHalf};
use tokio::time::{timeout, timeout_at, Instant};

/// Read buffer per direction: one TLS record at the largest size TLS 1.3 allows (16 KiB of
/// plaintext plus 256 bytes of expansion) plus its header, so a record that has arrived
/// whole is taken in one read.
const READ_BUFFER: usize = 16 * 1024 + 256 + 5;

/// How the peer's side of a relay ended.
#[derive(Debug, PartialEq, Eq)]
enum PeerEnd {
    /// The peer closed between records: let the server finish its answer.
    Closed,
    /// Refused, timed out or broken: close both sides now.
    Cut,
}

/// Reads one record from the peer before `deadline`, counting and logging what ends the
/// connection. `handshake` says which timeout is running.
async fn peer_record<R: AsyncRead + Unpin>(
    r: &mut R,
    site: &Site,
    peer: &Peer,
    deadline: Instant,
    handshake: bool,
) -> Result<Record, PeerEnd> {
    let limit = site.shared.limits.record_limit();
    match timeout_at(deadline, read_record(r, limit)).await {
        Err(_) => {
            let event = if handshake {
                Event::HandshakeTimeout
            } else {
                Event::IdleTimeout
            };
            site.count(event);
            tracing::debug!(listener = %site.label, %peer, handshake, "tls peer timed out");
            Err(PeerEnd::Cut)
        }
        Ok(Ok(record)) => Ok(record),
        Ok(Err(ReadRecordError::Closed)) => Err(PeerEnd::Closed),
        Ok(Err(ReadRecordError::Refused(e))) => {
            let event = match e {
                super::record::RecordError::Oversize { .. } => Event::RefusedOversize,
                _ => Event::RefusedGarbage,
            };
            site.count(event);
            site.warn(peer, "refused_record", format_args!("{e}"));
            Err(PeerEnd::Cut)
        }
        Ok(Err(ReadRecordError::Io(e))) => {
            tracing::debug!(listener = %site.label, %peer, error = %e, "tls peer broke mid-record");
            Err(PeerEnd::Cut)
        }
    }
}

/// Writes one record within the idle timeout; `false` when the other side could not take it.
async fn forward<W: AsyncWrite + Unpin>(w: &mut W, record: &Record, timeout_ms: u64) -> bool {
    matches!(
        timeout(
            Duration::from_millis(timeout_ms),
            w.write_all(&record.bytes)
        )
        .await,
        Ok(Ok(()))
    )
}

/// Serves one connection on a TLS route until either side ends it or a limit cuts it.
pub(crate) async fn serve<T: Transport>(
    conn: Connection,
    mut admitted: Admitted,
    site: Arc<Site>,
    upstream: Arc<T>,
) {
    let limits = Arc::clone(&site.shared.limits);
    let peer = admitted.peer.clone();
    let handshake_deadline = Instant::now() + Duration::from_millis(limits.handshake_timeout_ms);
    let (peer_r, mut peer_w) = tokio::io::split(conn);
    // Buffered: a record's header and body (often the whole record) come in one read.
    let mut peer_r = BufReader::with_capacity(READ_BUFFER, peer_r);

    let Ok(hello) = peer_record(&mut peer_r, &site, &peer, handshake_deadline, true).await else {
        return;
    };
    if hello.header.content_type != ContentType::Handshake {
        site.count(Event::RefusedGarbage);
        site.warn(
            &peer,
            "refused_record",
            format_args!(
                "first record is {:?}, not a handshake",
                hello.header.content_type
            ),
        );
        return;
    }
    if !admitted.take_token(&site) {
        return;
    }
    let connect = timeout(
        Duration::from_millis(limits.connect_timeout_ms),
        upstream.connect(),
    );
    let server = match connect.await {
        Ok(Ok(server)) => server,
        Ok(Err(e)) => {
            site.count(Event::UpstreamError);
            site.warn(&peer, "upstream_error", format_args!("{e}"));
            return;
        }
        Err(_) => {
            site.count(Event::UpstreamError);
            site.warn(&peer, "upstream_error", format_args!("connect timed out"));
            return;
        }
    };
    let (server_r, mut server_w) = tokio::io::split(server);
    let server_r = BufReader::with_capacity(READ_BUFFER, server_r);
    if !forward(&mut server_w, &hello, limits.idle_timeout_ms).await {
        site.count(Event::UpstreamError);
        return;
    }
    site.count(Event::Forwarded);
    site.counters().add_bytes(true, hello.bytes.len());

    let server_encrypted = AtomicBool::new(false);
    let down = server_to_peer(server_r, &mut peer_w, &site, &server_encrypted);
    tokio::pin!(down);
    let up = peer_to_server(
        &mut peer_r,
        &mut server_w,
        &mut admitted,
        &site,
        &server_encrypted,
        handshake_deadline,
    );
    let ended = tokio::select! {
        ended = up => Some(ended),
        () = &mut down => None,
    };
    if ended == Some(PeerEnd::Closed) {
        // The peer is done sending; the server may still be answering.
        let _ = server_w.shutdown().await;
        let _ = timeout(Duration::from_millis(limits.idle_timeout_ms), &mut down).await;
    }
}

/// Carries the peer's records to the server until the peer stops or is cut off.
async fn peer_to_server<R, W>(
    peer_r: &mut R,
    server_w: &mut W,
    admitted: &mut Admitted,
    site: &Site,
    server_encrypted: &AtomicBool,
    handshake_deadline: Instant,
) -> PeerEnd
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let limits = Arc::clone(&site.shared.limits);
    let idle = Duration::from_millis(limits.idle_timeout_ms);
    let peer = admitted.peer.clone();
    let mut handshake = true;
    loop {
        let idle_deadline = Instant::now() + idle;
        let deadline = if handshake {
            idle_deadline.min(handshake_deadline)
        } else {
            idle_deadline
        };
        let on_handshake_clock = handshake && handshake_deadline <= idle_deadline;
        let record = match peer_record(peer_r, site, &peer, deadline, on_handshake_clock).await {
            Ok(record) => record,
            Err(end) => return end,
        };
        if handshake
            && record.header.content_type == ContentType::ApplicationData
            && server_encrypted.load(Ordering::Relaxed)
        {
            handshake = false;
        }
        if !admitted.take_token(site) {
            return PeerEnd::Cut;
        }
        if !forward(server_w, &record, limits.idle_timeout_ms).await {
            site.count(Event::UpstreamError);
            return PeerEnd::Cut;
        }
        site.count(Event::Forwarded);
        site.counters().add_bytes(true, record.bytes.len());
    }
}

/// Carries the server's records back to the peer until the server stops, breaks, or the
/// peer stops reading.
async fn server_to_peer<S>(
    mut server_r: BufReader<ReadHalf<S>>,
    peer_w: &mut WriteHalf<Connection>,
    site: &Site,
    server_encrypted: &AtomicBool,
) where
    S: AsyncRead + AsyncWrite,
{
    let limits = &site.shared.limits;
    loop {
        let record = match read_record(&mut server_r, limits.record_limit()).await {
            Ok(record) => record,
            Err(ReadRecordError::Closed) => return,
            Err(e) => {
                site.count(Event::UpstreamError);
                tracing::debug!(listener = %site.label, error = %e, "tls server sent a bad record");
                return;
            }
        };
        if record.header.content_type == ContentType::ApplicationData {
            server_encrypted.store(true, Ordering::Relaxed);
        }
        if !forward(peer_w, &record, limits.idle_timeout_ms).await {
            return;
        }
        site.counters().add_bytes(false, record.bytes.len());
    }
}
