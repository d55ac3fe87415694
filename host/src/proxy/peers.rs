//! Per-peer accounting: how many connections each peer holds, and its shared request bucket.
//!
//! A hostile client can open many connections; per-connection limits alone would let it
//! multiply its share by its connection count. Here every connection of one peer (one IP
//! address, one Unix user id, one vsock context id) draws on the same connection quota and
//! the same token bucket, so a flood from one source leaves room for the others.
//!
//! Memory stays bounded: an entry lives while the peer holds a connection; afterwards it is
//! kept only until its bucket has refilled (forgetting it earlier would hand the peer a
//! fresh burst), and idle entries beyond [`MAX_IDLE_PEERS_TRACKED`] are pruned as soon as
//! that is true.

use super::limits::{Limits, MAX_IDLE_PEERS_TRACKED};
use super::rate::TokenBucket;
use crate::transport::Peer;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

/// The identity per-peer limits are keyed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeerKey {
    /// A TCP client's address (port ignored: one host, one quota).
    Ip(IpAddr),
    /// A Unix-socket client's user id.
    Uid(u32),
    /// A vsock peer's context id.
    Cid(u32),
    /// A Unix-socket client whose credentials could not be read: all such share one quota.
    Unknown,
}

impl From<&Peer> for PeerKey {
    fn from(peer: &Peer) -> Self {
        match peer {
            Peer::Tcp(addr) => PeerKey::Ip(addr.ip()),
            Peer::Unix { uid: Some(uid) } => PeerKey::Uid(*uid),
            Peer::Unix { uid: None } => PeerKey::Unknown,
            Peer::Vsock { cid, .. } => PeerKey::Cid(*cid),
        }
    }
}

#[derive(Debug)]
struct Entry {
    open: usize,
    bucket: TokenBucket,
}

/// Connection counts and request buckets of every peer the proxy is talking to.
#[derive(Debug)]
pub struct PeerTable {
    max_open: usize,
    per_second: u32,
    burst: u32,
    entries: Mutex<HashMap<PeerKey, Entry>>,
}

/// Holds one of a peer's connection slots; gives it back when dropped.
#[derive(Debug)]
pub struct PeerSlot {
    table: Arc<PeerTable>,
    key: PeerKey,
}

impl PeerSlot {
    /// The peer this slot belongs to.
    pub fn key(&self) -> PeerKey {
        self.key
    }

    /// Takes one request token from the peer's shared bucket; `false` when the peer is over
    /// its rate.
    pub fn try_take(&self, now: Instant) -> bool {
        let mut entries = self.table.lock();
        entries
            .get_mut(&self.key)
            .is_some_and(|e| e.bucket.try_take(now))
    }
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let now = Instant::now();
        let mut entries = self.table.lock();
        if let Some(e) = entries.get_mut(&self.key) {
            e.open = e.open.saturating_sub(1);
        }
        if entries.len() > MAX_IDLE_PEERS_TRACKED {
            entries.retain(|_, e| e.open > 0 || !e.bucket.is_full(now));
        }
    }
}

impl PeerTable {
    /// An empty table enforcing `limits`' per-peer connection and rate limits.
    pub fn new(limits: &Limits) -> Self {
        Self {
            max_open: limits.max_connections_per_peer,
            per_second: limits.peer_requests_per_second,
            burst: limits.peer_request_burst,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<PeerKey, Entry>> {
        // A poisoned lock means a panic mid-update of two integers; the values still serve.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A connection slot for `key`, or `None` when the peer already holds its limit.
    pub fn admit(self: &Arc<Self>, key: PeerKey) -> Option<PeerSlot> {
        let now = Instant::now();
        let mut entries = self.lock();
        let entry = entries.entry(key).or_insert_with(|| Entry {
            open: 0,
            bucket: TokenBucket::new(self.per_second, self.burst, now),
        });
        if entry.open >= self.max_open {
            return None;
        }
        entry.open += 1;
        Some(PeerSlot {
            table: Arc::clone(self),
            key,
        })
    }

    /// Peers currently remembered (with connections, or with a bucket still refilling).
    pub fn tracked(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn table(max_open: usize, per_second: u32, burst: u32) -> Arc<PeerTable> {
        Arc::new(PeerTable::new(&Limits {
            max_connections_per_peer: max_open,
            peer_requests_per_second: per_second,
            peer_request_burst: burst,
            ..Limits::default()
        }))
    }

    #[test]
    fn connection_quota_is_per_peer() {
        let t = table(2, 1, 1);
        let a = PeerKey::Uid(1);
        let b = PeerKey::Ip("127.0.0.2".parse().unwrap());
        let a1 = t.admit(a).unwrap();
        let _a2 = t.admit(a).unwrap();
        assert!(t.admit(a).is_none());
        // Another peer is unaffected.
        let _b1 = t.admit(b).unwrap();
        // A slot given back can be taken again.
        drop(a1);
        assert!(t.admit(a).is_some());
    }

    #[test]
    fn rate_is_shared_by_a_peers_connections() {
        let t = table(8, 1, 3);
        let k = PeerKey::Cid(7);
        let s1 = t.admit(k).unwrap();
        let s2 = t.admit(k).unwrap();
        let now = Instant::now();
        assert!(s1.try_take(now));
        assert!(s2.try_take(now));
        assert!(s1.try_take(now));
        assert!(!s2.try_take(now));
        assert!(!s1.try_take(now));
        // Reconnecting does not refill the bucket.
        drop(s1);
        drop(s2);
        let s3 = t.admit(k).unwrap();
        assert!(!s3.try_take(now));
        assert!(s3.try_take(now + Duration::from_secs(1)));
    }

    #[test]
    fn peer_keys_follow_the_transport_identity() {
        assert_eq!(
            PeerKey::from(&Peer::Tcp("10.0.0.1:4000".parse().unwrap())),
            PeerKey::from(&Peer::Tcp("10.0.0.1:4001".parse().unwrap()))
        );
        assert_eq!(PeerKey::from(&Peer::Unix { uid: Some(5) }), PeerKey::Uid(5));
        assert_eq!(PeerKey::from(&Peer::Unix { uid: None }), PeerKey::Unknown);
        assert_eq!(
            PeerKey::from(&Peer::Vsock { cid: 9, port: 1 }),
            PeerKey::Cid(9)
        );
    }

    #[test]
    fn idle_peers_are_forgotten_once_refilled() {
        let t = table(1, 1_000_000, 1);
        let mut keys = Vec::new();
        for i in 0..=u32::try_from(MAX_IDLE_PEERS_TRACKED).unwrap() {
            keys.push(PeerKey::Uid(i));
        }
        for k in keys {
            drop(t.admit(k).unwrap());
        }
        assert!(t.tracked() <= MAX_IDLE_PEERS_TRACKED + 1);
        std::thread::sleep(Duration::from_millis(5));
        drop(t.admit(PeerKey::Uid(u32::MAX)).unwrap());
        drop(t.admit(PeerKey::Uid(u32::MAX - 1)).unwrap());
        assert!(t.tracked() < MAX_IDLE_PEERS_TRACKED);
    }
}
