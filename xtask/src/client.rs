//! A small blocking client of the enclave API through a host proxy's Unix socket.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;
use wire::msg::{Request, Response};

/// Sends one request on a fresh connection and returns the response.
pub fn call(socket: &Path, req: &Request) -> anyhow::Result<Response> {
    let mut s = UnixStream::connect(socket)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    send_raw(&mut s, &wire::encode(req)?)?;
    let body = read_raw(&mut s)?;
    Ok(wire::decode(&body)?)
}

/// Writes one frame.
pub fn send_raw(s: &mut UnixStream, body: &[u8]) -> anyhow::Result<()> {
    let len = u32::try_from(body.len())?;
    s.write_all(&len.to_be_bytes())?;
    s.write_all(body)?;
    Ok(())
}

/// Reads one frame.
pub fn read_raw(s: &mut UnixStream) -> anyhow::Result<Vec<u8>> {
    let mut h = [0u8; 4];
    s.read_exact(&mut h)?;
    let len = u32::from_be_bytes(h);
    anyhow::ensure!(len <= wire::MAX_FRAME_BYTES, "oversize frame from proxy");
    let mut body = vec![0u8; usize::try_from(len)?];
    s.read_exact(&mut body)?;
    Ok(body)
}
