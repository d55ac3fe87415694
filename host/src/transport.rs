//! Where the proxy's bytes go: endpoints named as text, connected and listened on.
//!
//! The proxy mediates between two worlds, as Firecracker's vsock muxer does: ordinary
//! sockets on the host side, vsock on the guest side. In development there is no
//! hypervisor, so the guest side follows the Firecracker "hybrid vsock" convention over Unix
//! sockets ([`wire::hybrid`]) and the same proxy code runs unchanged. Endpoints are written
//! as:
//!
//! * `unix:/path/to.sock`: a plain Unix stream socket;
//! * `tcp:127.0.0.1:7000` (or `tcp:[::1]:7000`): a TCP address (IP literal, no DNS);
//! * `dns:verifier.internal:7000`: a TCP destination by host name, resolved at each
//!   connect (destinations only: the proxy never listens on a name);
//! * `hybrid:/path/to/enclave.sock:5000`: host-initiated hybrid vsock, i.e. connect to the
//!   Unix socket and perform the `CONNECT 5000` handshake;
//! * `vsock:3:5000`: real `AF_VSOCK`, context id 3, port 5000.
//!
//! The proxy sees connections only as [`Connection`]s (bytes in, bytes out) and reaches
//! upstreams through the [`Transport`] trait, so its logic can be tested without a guest.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

/// A vsock port number (host or guest side).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VsockPort(pub u32);

impl fmt::Display for VsockPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for VsockPort {
    type Err = ParseEndpointError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse::<u32>()
            .map(VsockPort)
            .map_err(|_| ParseEndpointError::BadPort(s.to_owned()))
    }
}

/// A place to connect to or listen on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `unix:PATH`.
    Unix(PathBuf),
    /// `tcp:IP:PORT`.
    Tcp(SocketAddr),
    /// `dns:HOST:PORT`: a TCP destination by name, resolved at each connect.
    Dns {
        /// Host name (letters, digits, `-` and `.`; at most 253 characters).
        host: String,
        /// TCP port.
        port: u16,
    },
    /// `hybrid:UDS:PORT`: host-initiated hybrid vsock through the guest's Unix socket.
    Hybrid {
        /// The guest's (or VMM's) Unix socket.
        uds: PathBuf,
        /// The guest vsock port asked for in the `CONNECT` line.
        port: VsockPort,
    },
    /// `vsock:CID:PORT`: a real `AF_VSOCK` address.
    Vsock {
        /// Context id of the peer (2 is the host, guests are 3 and up).
        cid: u32,
        /// Port.
        port: VsockPort,
    },
}

/// Errors reading an endpoint from text.
#[derive(Debug, thiserror::Error)]
pub enum ParseEndpointError {
    /// "endpoint `{0}` has no known scheme; use unix:, tcp:, hybrid: or vsock:".
    #[error("endpoint `{0}` has no known scheme; use unix:, tcp:, hybrid: or vsock:")]
    UnknownScheme(String),
    /// "endpoint `{0}` has an empty path".
    #[error("endpoint `{0}` has an empty path")]
    EmptyPath(String),
    /// "`{0}` is not an ip:port address (host names are not resolved)".
    #[error("`{0}` is not an ip:port address (host names are not resolved)")]
    BadAddress(String),
    /// "`{0}` is not a port number".
    #[error("`{0}` is not a port number")]
    BadPort(String),
    /// "`{0}` is not a vsock context id".
    #[error("`{0}` is not a vsock context id")]
    BadCid(String),
    /// "endpoint `{0}` lacks its `:PORT` suffix".
    #[error("endpoint `{0}` lacks its `:PORT` suffix")]
    MissingPort(String),
    /// "`{0}` is not a host name (letters, digits, `-` and `.`)".
    #[error("`{0}` is not a host name (letters, digits, `-` and `.`)")]
    BadHostName(String),
}

/// Longest host name accepted in a `dns:` endpoint (RFC 1035 §2.3.4, textual form).
pub const MAX_HOST_NAME_CHARS: usize = 253;

fn host_name(name: &str) -> Result<String, ParseEndpointError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_HOST_NAME_CHARS
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if ok {
        Ok(name.to_ascii_lowercase())
    } else {
        Err(ParseEndpointError::BadHostName(name.to_owned()))
    }
}

impl FromStr for Endpoint {
    type Err = ParseEndpointError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (scheme, rest) = s
            .split_once(':')
            .ok_or_else(|| ParseEndpointError::UnknownScheme(s.to_owned()))?;
        let path = |p: &str| {
            if p.is_empty() {
                Err(ParseEndpointError::EmptyPath(s.to_owned()))
            } else {
                Ok(PathBuf::from(p))
            }
        };
        match scheme {
            "unix" => Ok(Endpoint::Unix(path(rest)?)),
            "tcp" => rest
                .parse::<SocketAddr>()
                .map(Endpoint::Tcp)
                .map_err(|_| ParseEndpointError::BadAddress(rest.to_owned())),
            "hybrid" => {
                let (uds, port) = split_port(s, rest)?;
                Ok(Endpoint::Hybrid {
                    uds: path(uds)?,
                    port: port.parse()?,
                })
            }
            "dns" => {
                let (host, port) = split_port(s, rest)?;
                Ok(Endpoint::Dns {
                    host: host_name(host)?,
                    port: port
                        .parse()
                        .map_err(|_| ParseEndpointError::BadPort(port.to_owned()))?,
                })
            }
            "vsock" => {
                let (cid, port) = split_port(s, rest)?;
                Ok(Endpoint::Vsock {
                    cid: cid
                        .parse()
                        .map_err(|_| ParseEndpointError::BadCid(cid.to_owned()))?,
                    port: port.parse()?,
                })
            }
            _ => Err(ParseEndpointError::UnknownScheme(s.to_owned())),
        }
    }
}

/// Splits `REST:PORT` at its last colon (paths may contain colons, ports do not).
fn split_port<'a>(whole: &str, rest: &'a str) -> Result<(&'a str, &'a str), ParseEndpointError> {
    rest.rsplit_once(':')
        .ok_or_else(|| ParseEndpointError::MissingPort(whole.to_owned()))
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Unix(p) => write!(f, "unix:{}", p.display()),
            Endpoint::Tcp(a) => write!(f, "tcp:{a}"),
            Endpoint::Dns { host, port } => write!(f, "dns:{host}:{port}"),
            Endpoint::Hybrid { uds, port } => write!(f, "hybrid:{}:{port}", uds.display()),
            Endpoint::Vsock { cid, port } => write!(f, "vsock:{cid}:{port}"),
        }
    }
}

/// A byte stream of any transport.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// A connected stream, whatever carries it.
pub type Connection = Box<dyn Stream>;

/// Who is on the other end of an accepted connection, as far as the transport can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peer {
    /// A Unix-socket peer: no address, but the kernel tells its user id (`SO_PEERCRED`).
    Unix {
        /// The peer process's user id, when the credentials could be read.
        uid: Option<u32>,
    },
    /// A TCP peer.
    Tcp(SocketAddr),
    /// A vsock peer.
    Vsock {
        /// The peer's context id.
        cid: u32,
        /// The peer's port.
        port: u32,
    },
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Unix { uid: Some(uid) } => write!(f, "unix:uid={uid}"),
            Peer::Unix { uid: None } => f.write_str("unix"),
            Peer::Tcp(a) => write!(f, "tcp:{a}"),
            Peer::Vsock { cid, port } => write!(f, "vsock:{cid}:{port}"),
        }
    }
}

/// Errors connecting or listening.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// "could not connect to `{endpoint}`".
    #[error("could not connect to `{endpoint}`")]
    Connect {
        /// Where.
        endpoint: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// "hybrid vsock handshake with `{endpoint}` failed".
    #[error("hybrid vsock handshake with `{endpoint}` failed")]
    Handshake {
        /// Where.
        endpoint: String,
        /// Cause.
        #[source]
        source: wire::hybrid::HybridError,
    },
    /// "could not listen on `{endpoint}`".
    #[error("could not listen on `{endpoint}`")]
    Listen {
        /// Where.
        endpoint: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// "`{0}` is already in use by a live listener".
    #[error("`{0}` is already in use by a live listener")]
    InUse(String),
    /// "cannot listen on `{0}`: only unix:, tcp: and vsock: endpoints are listened on".
    #[error("cannot listen on `{0}`: only unix:, tcp: and vsock: endpoints are listened on")]
    NotListenable(String),
    /// "could not read the listener's local address".
    #[error("could not read the listener's local address")]
    LocalAddress(#[source] std::io::Error),
    /// "accepting a connection failed".
    #[error("accepting a connection failed")]
    Accept(#[source] std::io::Error),
}

/// Something the proxy can open connections to. [`Endpoint`] is the production
/// implementation; tests may supply in-memory ones.
pub trait Transport: Send + Sync {
    /// Opens one connection.
    fn connect(&self) -> impl Future<Output = Result<Connection, TransportError>> + Send;
}

impl Transport for Endpoint {
    async fn connect(&self) -> Result<Connection, TransportError> {
        let failed = |source| TransportError::Connect {
            endpoint: self.to_string(),
            source,
        };
        match self {
            Endpoint::Unix(path) => Ok(Box::new(UnixStream::connect(path).await.map_err(failed)?)),
            Endpoint::Tcp(addr) => {
                let s = TcpStream::connect(addr).await.map_err(failed)?;
                // Frames are written whole; do not hold the tail of one back.
                s.set_nodelay(true).map_err(failed)?;
                Ok(Box::new(s))
            }
            Endpoint::Dns { host, port } => {
                // Resolved at every connect, so a destination that moves is followed.
                let s = TcpStream::connect((host.as_str(), *port))
                    .await
                    .map_err(failed)?;
                s.set_nodelay(true).map_err(failed)?;
                Ok(Box::new(s))
            }
            Endpoint::Hybrid { uds, port } => wire::hybrid::connect(uds, port.0)
                .await
                .map(|s| Box::new(s) as Connection)
                .map_err(|source| TransportError::Handshake {
                    endpoint: self.to_string(),
                    source,
                }),
            Endpoint::Vsock { cid, port } => {
                let addr = tokio_vsock::VsockAddr::new(*cid, port.0);
                let s = tokio_vsock::VsockStream::connect(addr)
                    .await
                    .map_err(failed)?;
                Ok(Box::new(s))
            }
        }
    }
}

/// A bound listener of any transport. Unix socket files are removed when it is dropped.
#[derive(Debug)]
pub enum Listener {
    /// Unix stream socket.
    Unix(UnixListener, SocketFileGuard),
    /// TCP.
    Tcp(TcpListener),
    /// `AF_VSOCK`.
    Vsock(tokio_vsock::VsockListener),
}

/// A Unix socket file this process created, owned for as long as its [`Listener`] lives and
/// removed when dropped.
#[derive(Debug)]
pub struct SocketFileGuard(PathBuf);

impl SocketFileGuard {
    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for SocketFileGuard {
    fn drop(&mut self) {
        // Best effort: the file may already be gone, and there is no one to tell.
        let _ = std::fs::remove_file(&self.0);
    }
}

impl Listener {
    /// Binds `endpoint`. A stale Unix socket file (nobody accepting on it) is replaced; a
    /// live one is [`TransportError::InUse`]. For `vsock:CID:PORT` the CID names the local
    /// address to bind (use `4294967295`, `VMADDR_CID_ANY`, for any).
    pub async fn bind(endpoint: &Endpoint) -> Result<Listener, TransportError> {
        let failed = |source| TransportError::Listen {
            endpoint: endpoint.to_string(),
            source,
        };
        match endpoint {
            Endpoint::Unix(path) => {
                remove_stale_socket(path).await?;
                let l = UnixListener::bind(path).map_err(failed)?;
                Ok(Listener::Unix(l, SocketFileGuard(path.clone())))
            }
            Endpoint::Tcp(addr) => Ok(Listener::Tcp(
                TcpListener::bind(addr).await.map_err(failed)?,
            )),
            Endpoint::Vsock { cid, port } => {
                let addr = tokio_vsock::VsockAddr::new(*cid, port.0);
                Ok(Listener::Vsock(
                    tokio_vsock::VsockListener::bind(addr).map_err(failed)?,
                ))
            }
            Endpoint::Hybrid { .. } | Endpoint::Dns { .. } => {
                Err(TransportError::NotListenable(endpoint.to_string()))
            }
        }
    }

    /// The endpoint actually bound (with the real port after binding `tcp:…:0`).
    pub fn local_endpoint(&self) -> Result<Endpoint, TransportError> {
        match self {
            Listener::Unix(_, guard) => Ok(Endpoint::Unix(guard.path().to_path_buf())),
            Listener::Tcp(l) => l
                .local_addr()
                .map(Endpoint::Tcp)
                .map_err(TransportError::LocalAddress),
            Listener::Vsock(l) => l
                .local_addr()
                .map(|a| Endpoint::Vsock {
                    cid: a.cid(),
                    port: VsockPort(a.port()),
                })
                .map_err(TransportError::LocalAddress),
        }
    }

    /// Waits for the next connection.
    pub async fn accept(&self) -> Result<(Connection, Peer), TransportError> {
        match self {
            Listener::Unix(l, _) => {
                let (s, _) = l.accept().await.map_err(TransportError::Accept)?;
                let uid = s.peer_cred().ok().map(|c| c.uid());
                Ok((Box::new(s), Peer::Unix { uid }))
            }
            Listener::Tcp(l) => {
                let (s, addr) = l.accept().await.map_err(TransportError::Accept)?;
                s.set_nodelay(true).map_err(TransportError::Accept)?;
                Ok((Box::new(s), Peer::Tcp(addr)))
            }
            Listener::Vsock(l) => {
                let (s, addr) = l.accept().await.map_err(TransportError::Accept)?;
                Ok((
                    Box::new(s),
                    Peer::Vsock {
                        cid: addr.cid(),
                        port: addr.port(),
                    },
                ))
            }
        }
    }
}

/// Removes `path` if it is a Unix socket that nobody accepts on any more.
async fn remove_stale_socket(path: &Path) -> Result<(), TransportError> {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    if !meta.file_type().is_socket() {
        // Not ours to delete; let bind report the conflict.
        return Ok(());
    }
    match UnixStream::connect(path).await {
        Ok(_) => Err(TransportError::InUse(path.display().to_string())),
        Err(_) => std::fs::remove_file(path).map_err(|source| TransportError::Listen {
            endpoint: format!("unix:{}", path.display()),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_and_print_back() {
        for text in [
            "unix:/run/k1/public.sock",
            "tcp:127.0.0.1:7000",
            "tcp:[::1]:7000",
            "dns:verifier.internal:7000",
            "hybrid:/run/k1/enclave.sock:5000",
            "vsock:3:5000",
        ] {
            let ep: Endpoint = text.parse().unwrap();
            assert_eq!(ep.to_string(), text);
        }
        assert_eq!(
            "hybrid:/a:b/c.sock:5100".parse::<Endpoint>().unwrap(),
            Endpoint::Hybrid {
                uds: PathBuf::from("/a:b/c.sock"),
                port: VsockPort(5100)
            }
        );
    }

    #[test]
    fn bad_endpoints_name_what_is_wrong() {
        let err = |t: &str| t.parse::<Endpoint>().unwrap_err();
        assert!(matches!(
            err("/tmp/x.sock"),
            ParseEndpointError::UnknownScheme(_)
        ));
        assert!(matches!(
            err("http://x"),
            ParseEndpointError::UnknownScheme(_)
        ));
        assert!(matches!(err("unix:"), ParseEndpointError::EmptyPath(_)));
        assert!(matches!(
            err("tcp:localhost:80"),
            ParseEndpointError::BadAddress(_)
        ));
        assert!(matches!(
            err("hybrid:/x.sock"),
            ParseEndpointError::MissingPort(_)
        ));
        assert!(matches!(
            err("hybrid:/x.sock:port"),
            ParseEndpointError::BadPort(_)
        ));
        assert!(matches!(
            err("hybrid::5000"),
            ParseEndpointError::EmptyPath(_)
        ));
        assert!(matches!(err("vsock:x:1"), ParseEndpointError::BadCid(_)));
        assert!(matches!(
            err("dns:bad_name:1"),
            ParseEndpointError::BadHostName(_)
        ));
        assert!(matches!(
            err("dns:-x.example:1"),
            ParseEndpointError::BadHostName(_)
        ));
        assert!(matches!(
            err("dns:x.example:70000"),
            ParseEndpointError::BadPort(_)
        ));
        assert!(matches!(
            err("dns:x.example"),
            ParseEndpointError::MissingPort(_)
        ));
        assert_eq!(
            "dns:Verifier.Internal:7000"
                .parse::<Endpoint>()
                .unwrap()
                .to_string(),
            "dns:verifier.internal:7000"
        );
        assert!(matches!(err("vsock:3:-1"), ParseEndpointError::BadPort(_)));
    }

    #[tokio::test]
    async fn unix_listener_replaces_stale_socket_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        // A stale socket file: bound, then the listener closed without removing it.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(path.exists());
        let ep = Endpoint::Unix(path.clone());
        let listener = Listener::bind(&ep).await.unwrap();
        assert_eq!(listener.local_endpoint().unwrap(), ep);
        // A second bind while the first is live is refused.
        assert!(matches!(
            Listener::bind(&ep).await,
            Err(TransportError::InUse(_))
        ));
        drop(listener);
        assert!(!path.exists());
    }

    #[tokio::test]
    async fn hybrid_and_dns_are_not_listenable() {
        for text in ["hybrid:/tmp/x.sock:5000", "dns:localhost:5000"] {
            let ep: Endpoint = text.parse().unwrap();
            assert!(matches!(
                Listener::bind(&ep).await,
                Err(TransportError::NotListenable(_))
            ));
        }
    }

    #[tokio::test]
    async fn dns_endpoint_connects_by_name() {
        let l = Listener::bind(&"tcp:127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let Endpoint::Tcp(addr) = l.local_endpoint().unwrap() else {
            panic!("tcp listener reports a non-tcp endpoint");
        };
        let ep: Endpoint = format!("dns:localhost:{}", addr.port()).parse().unwrap();
        let (client, server) = tokio::join!(ep.connect(), l.accept());
        client.unwrap();
        server.unwrap();
    }

    #[tokio::test]
    async fn unix_peers_carry_their_uid() {
        let dir = tempfile::tempdir().unwrap();
        let ep = Endpoint::Unix(dir.path().join("s.sock"));
        let l = Listener::bind(&ep).await.unwrap();
        let (client, server) = tokio::join!(ep.connect(), l.accept());
        client.unwrap();
        let (_, peer) = server.unwrap();
        let me = std::fs::metadata(dir.path()).map(|m| {
            use std::os::unix::fs::MetadataExt;
            m.uid()
        });
        assert_eq!(peer, Peer::Unix { uid: me.ok() });
    }

    #[tokio::test]
    async fn tcp_round_trip() {
        let l = Listener::bind(&"tcp:127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let ep = l.local_endpoint().unwrap();
        let (client, server) = tokio::join!(ep.connect(), l.accept());
        let mut client = client.unwrap();
        let (mut server, peer) = server.unwrap();
        assert!(matches!(peer, Peer::Tcp(_)));
        wire::write_frame(&mut client, b"ping").await.unwrap();
        assert_eq!(wire::read_frame(&mut server).await.unwrap(), b"ping");
    }
}
