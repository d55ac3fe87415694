//! One lazily opened upstream connection and the request/response exchange over it.
//!
//! Both directions forward the same way: one frame up, one frame back, each step under a
//! timeout and the frame limit. The connection is opened on the first frame that is worth
//! forwarding, so a client that only sends garbage never costs the enclave a connection,
//! and it is dropped after any failure so that the next request starts clean.

use super::limits::Limits;
use crate::transport::{Connection, Transport, TransportError};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::timeout;
use wire::FrameError;

/// Why a frame could not be exchanged with the upstream.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// "could not reach the upstream".
    #[error("could not reach the upstream")]
    Connect(#[source] TransportError),
    /// "the upstream did not accept a connection within {0} ms".
    #[error("the upstream did not accept a connection within {0} ms")]
    ConnectTimedOut(u64),
    /// "could not send the frame upstream".
    #[error("could not send the frame upstream")]
    Send(#[source] FrameError),
    /// "the upstream's response frame was unreadable".
    #[error("the upstream's response frame was unreadable")]
    Receive(#[source] FrameError),
    /// "the upstream did not answer within {0} ms".
    #[error("the upstream did not answer within {0} ms")]
    TimedOut(u64),
}

/// An upstream reached through `T`, connected on first use.
pub struct Upstream<T> {
    transport: Arc<T>,
    conn: Option<Connection>,
    limits: Arc<Limits>,
}

impl<T: Transport> Upstream<T> {
    /// Not yet connected.
    pub fn new(transport: Arc<T>, limits: Arc<Limits>) -> Self {
        Self {
            transport,
            conn: None,
            limits,
        }
    }

    /// Sends `body` as one frame and returns the one frame that answers it.
    pub async fn exchange(&mut self, body: &[u8]) -> Result<Vec<u8>, ForwardError> {
        let result = self.try_exchange(body).await;
        if result.is_err() {
            // The stream may hold half a frame or a late answer: never reuse it.
            self.conn = None;
        }
        result
    }

    async fn try_exchange(&mut self, body: &[u8]) -> Result<Vec<u8>, ForwardError> {
        let limit = self.limits.frame_limit();
        let response_ms = self.limits.response_timeout_ms;
        let conn = match &mut self.conn {
            Some(conn) => conn,
            None => {
                let connect_ms = self.limits.connect_timeout_ms;
                let conn = timeout(Duration::from_millis(connect_ms), self.transport.connect())
                    .await
                    .map_err(|_| ForwardError::ConnectTimedOut(connect_ms))?
                    .map_err(ForwardError::Connect)?;
                self.conn.insert(conn)
            }
        };
        timeout(Duration::from_millis(response_ms), async {
            wire::write_frame(conn, body)
                .await
                .map_err(ForwardError::Send)?;
            wire::frame::read_frame_limited(conn, limit)
                .await
                .map_err(ForwardError::Receive)
        })
        .await
        .map_err(|_| ForwardError::TimedOut(response_ms))?
    }
}
