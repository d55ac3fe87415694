//! Length-prefixed frames: `u32` big-endian length, then the body.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest body a frame may carry (1 MiB). Evidence bundles with several GPU reports and
/// certificate chains stay well below this; anything larger is refused before it is read.
pub const MAX_FRAME_BYTES: u32 = 1 << 20;

/// Size of the length prefix.
pub const HEADER_BYTES: usize = 4;

/// Errors reading or writing a frame.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// "frame of {0} bytes exceeds the limit of {1} bytes": refused before reading the body.
    #[error("frame of {len} bytes exceeds the limit of {limit} bytes")]
    Oversize {
        /// Length the peer announced.
        len: u32,
        /// The limit in force.
        limit: u32,
    },
    /// "empty frame": a zero-length body is never a valid message.
    #[error("empty frame")]
    Empty,
    /// "connection closed": the peer closed the stream cleanly between frames.
    #[error("connection closed")]
    Closed,
    /// "connection closed in the middle of a frame".
    #[error("connection closed in the middle of a frame")]
    Truncated,
    /// "i/o error on the connection".
    #[error("i/o error on the connection")]
    Io(#[source] std::io::Error),
}

/// Reads one frame, refusing bodies larger than `limit` (at most [`MAX_FRAME_BYTES`]).
pub async fn read_frame_limited<R: AsyncRead + Unpin + ?Sized>(
    reader: &mut R,
    limit: u32,
) -> Result<Vec<u8>, FrameError> {
    let limit = limit.min(MAX_FRAME_BYTES);
    let mut header = [0u8; HEADER_BYTES];
    let mut filled = 0usize;
    while filled < HEADER_BYTES {
        let n = match header.get_mut(filled..) {
            Some(rest) => reader.read(rest).await.map_err(FrameError::Io)?,
            None => return Err(FrameError::Truncated),
        };
        if n == 0 {
            return Err(if filled == 0 {
                FrameError::Closed
            } else {
                FrameError::Truncated
            });
        }
        filled += n;
    }
    let len = u32::from_be_bytes(header);
    if len > limit {
        return Err(FrameError::Oversize { len, limit });
    }
    if len == 0 {
        return Err(FrameError::Empty);
    }
    let mut body = vec![0u8; len as usize];
    reader.read_exact(&mut body).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            FrameError::Truncated
        } else {
            FrameError::Io(e)
        }
    })?;
    Ok(body)
}

/// Reads one frame with the default limit [`MAX_FRAME_BYTES`].
pub async fn read_frame<R: AsyncRead + Unpin + ?Sized>(
    reader: &mut R,
) -> Result<Vec<u8>, FrameError> {
    read_frame_limited(reader, MAX_FRAME_BYTES).await
}

/// Writes one frame; bodies above [`MAX_FRAME_BYTES`] are refused, never sent.
pub async fn write_frame<W: AsyncWrite + Unpin + ?Sized>(
    writer: &mut W,
    body: &[u8],
) -> Result<(), FrameError> {
    let len = u32::try_from(body.len()).unwrap_or(u32::MAX);
    if len > MAX_FRAME_BYTES {
        return Err(FrameError::Oversize {
            len,
            limit: MAX_FRAME_BYTES,
        });
    }
    if len == 0 {
        return Err(FrameError::Empty);
    }
    let mut buf = Vec::with_capacity(HEADER_BYTES + body.len());
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(body);
    writer.write_all(&buf).await.map_err(FrameError::Io)?;
    writer.flush().await.map_err(FrameError::Io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn round_trip_and_limits() {
        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        write_frame(&mut a, b"hello").await.unwrap();
        assert_eq!(read_frame(&mut b).await.unwrap(), b"hello");

        // Oversize announcement is refused before the body is read.
        let (mut a, mut b) = tokio::io::duplex(64);
        tokio::io::AsyncWriteExt::write_all(&mut a, &(MAX_FRAME_BYTES + 1).to_be_bytes())
            .await
            .unwrap();
        assert!(matches!(
            read_frame(&mut b).await,
            Err(FrameError::Oversize { .. })
        ));

        // Truncated body.
        let (mut a, mut b) = tokio::io::duplex(64);
        tokio::io::AsyncWriteExt::write_all(&mut a, &[0, 0, 0, 10, 1, 2])
            .await
            .unwrap();
        drop(a);
        assert!(matches!(
            read_frame(&mut b).await,
            Err(FrameError::Truncated)
        ));

        // Clean close between frames.
        let (a, mut b) = tokio::io::duplex(64);
        drop(a);
        assert!(matches!(read_frame(&mut b).await, Err(FrameError::Closed)));
    }

    #[tokio::test]
    async fn write_refuses_oversize() {
        let (mut a, _b) = tokio::io::duplex(64);
        let big = vec![0u8; MAX_FRAME_BYTES as usize + 1];
        assert!(matches!(
            write_frame(&mut a, &big).await,
            Err(FrameError::Oversize { .. })
        ));
    }
}
