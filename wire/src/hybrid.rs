//! The Firecracker "hybrid vsock" convention, so the same code runs with and without a
//! hypervisor.
//!
//! * Host-initiated: the host connects to the guest's Unix socket `uds`, writes
//!   `CONNECT <port>\n` and reads `OK <host_port>\n`; the stream then carries the guest's
//!   service on vsock `<port>`.
//! * Guest-initiated: a guest connection to host vsock port `P` arrives at the Unix socket
//!   `<uds>_<P>`, where the host proxy listens.
//!
//! In development the enclave runs as a plain process and speaks the guest side of this
//! handshake itself; under Firecracker the VMM does. See Firecracker
//! `docs/vsock.md` ("host-initiated connections").

use std::path::{Path, PathBuf};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

/// Longest handshake line accepted (`CONNECT 4294967295\n` is 19 bytes).
pub const MAX_HANDSHAKE_BYTES: usize = 32;

/// vsock port on which the enclave serves governance calls.
pub const GOVERNANCE_PORT: u32 = 5000;
/// Host vsock port the enclave dials to reach the verifier through the proxy.
pub const VERIFIER_PORT: u32 = 5100;
/// First host vsock port for peer kernels (peer `i` is `PEER_PORT_BASE + i`).
pub const PEER_PORT_BASE: u32 = 5200;

/// Errors in the hybrid-vsock handshake.
#[derive(Debug, thiserror::Error)]
pub enum HybridError {
    /// "could not connect to `{path}`".
    #[error("could not connect to `{path}`")]
    Connect {
        /// The socket path.
        path: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// "handshake line is malformed": not `CONNECT <port>` / `OK <port>`.
    #[error("handshake line is malformed")]
    Malformed,
    /// "no service on vsock port {0}".
    #[error("no service on vsock port {0}")]
    NoService(u32),
    /// "i/o error during handshake".
    #[error("i/o error during handshake")]
    Io(#[source] std::io::Error),
}

/// The Unix socket path where guest-initiated connections to host `port` arrive.
pub fn guest_initiated_path(uds: &Path, port: u32) -> PathBuf {
    let mut s = uds.as_os_str().to_owned();
    s.push(format!("_{port}"));
    PathBuf::from(s)
}

async fn read_line(stream: &mut UnixStream) -> Result<String, HybridError> {
    let mut line = Vec::with_capacity(MAX_HANDSHAKE_BYTES);
    let mut byte = [0u8; 1];
    loop {
        let n = stream.read(&mut byte).await.map_err(HybridError::Io)?;
        if n == 0 {
            return Err(HybridError::Malformed);
        }
        if byte == [b'\n'] {
            break;
        }
        if line.len() >= MAX_HANDSHAKE_BYTES {
            return Err(HybridError::Malformed);
        }
        line.extend_from_slice(&byte);
    }
    String::from_utf8(line).map_err(|_| HybridError::Malformed)
}

fn parse_port(line: &str, word: &str) -> Result<u32, HybridError> {
    let rest = line
        .strip_prefix(word)
        .and_then(|r| r.strip_prefix(' '))
        .ok_or(HybridError::Malformed)?;
    rest.trim()
        .parse::<u32>()
        .map_err(|_| HybridError::Malformed)
}

/// Host side: connect to the guest socket `uds` and ask for vsock `port`.
pub async fn connect(uds: &Path, port: u32) -> Result<UnixStream, HybridError> {
    let mut stream = UnixStream::connect(uds)
        .await
        .map_err(|source| HybridError::Connect {
            path: uds.display().to_string(),
            source,
        })?;
    stream
        .write_all(format!("CONNECT {port}\n").as_bytes())
        .await
        .map_err(HybridError::Io)?;
    let line = read_line(&mut stream).await?;
    parse_port(&line, "OK")?;
    Ok(stream)
}

/// Guest side: read `CONNECT <port>`; answer `OK <port>` when `port` is served, else refuse.
pub async fn accept(stream: &mut UnixStream, served: &[u32]) -> Result<u32, HybridError> {
    let line = read_line(stream).await?;
    let port = parse_port(&line, "CONNECT")?;
    if !served.contains(&port) {
        return Err(HybridError::NoService(port));
    }
    stream
        .write_all(format!("OK {port}\n").as_bytes())
        .await
        .map_err(HybridError::Io)?;
    Ok(port)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_parsing() {
        assert_eq!(
            guest_initiated_path(Path::new("/run/k1/v.sock"), 5100),
            PathBuf::from("/run/k1/v.sock_5100")
        );
        assert_eq!(parse_port("CONNECT 5000", "CONNECT").unwrap(), 5000);
        assert!(parse_port("CONNECT", "CONNECT").is_err());
        assert!(parse_port("CONNECTX 1", "CONNECT").is_err());
        assert!(parse_port("CONNECT -1", "CONNECT").is_err());
    }

    #[tokio::test]
    async fn handshake_over_a_real_socket() {
        let dir = std::env::temp_dir().join(format!("hybrid-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("v.sock");
        let _ = std::fs::remove_file(&path);
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let ok = accept(&mut s, &[GOVERNANCE_PORT]).await;
            let (mut s2, _) = listener.accept().await.unwrap();
            let refused = accept(&mut s2, &[GOVERNANCE_PORT]).await;
            (ok.unwrap(), refused.is_err())
        });
        connect(&path, GOVERNANCE_PORT).await.unwrap();
        assert!(connect(&path, 9).await.is_err());
        let (port, refused) = server.await.unwrap();
        assert_eq!(port, GOVERNANCE_PORT);
        assert!(refused);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
