//! KEE-1 P7: the governance audit log. Every decision and governance event is an Audit Log
//! Event (ALE) chained by `prev_span_hash`; the log is SQLite in WAL mode (the embedded
//! default) with group commit: a writer thread takes every ALE waiting, commits them in one
//! transaction, and only then acknowledges each one. An ALE is acknowledged only once durable.

use rusqlite::{params, Connection};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::mpsc;
use tokio::sync::oneshot;

/// Most ALEs committed in one transaction.
pub const MAX_GROUP: usize = 256;
/// Hash of "no previous event".
pub const GENESIS_HASH: [u8; 32] = [0u8; 32];

/// One audit event as stored and hashed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ale {
    /// Sequence number (1-based, gap-free).
    pub seq: u64,
    /// Session the event belongs to.
    pub session_id: String,
    /// When (Unix ms).
    pub at_ms: u64,
    /// Event type, e.g. `soos.governance.cedar.decision`.
    pub kind: String,
    /// Event details (CBOR of an event-specific struct).
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
    /// Hash of the previous ALE.
    #[serde(with = "serde_bytes")]
    pub prev_span_hash: Vec<u8>,
}

impl Ale {
    /// SHA-256 over the CBOR of the event (the span hash the next ALE points to).
    pub fn hash(&self) -> [u8; 32] {
        attestation::sha256(&wire::encode(self).unwrap_or_default())
    }
}

/// What a caller asks to record.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// Session.
    pub session_id: String,
    /// Event type.
    pub kind: String,
    /// Details.
    pub body: Vec<u8>,
}

/// Errors of the audit log.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// "audit database error".
    #[error("audit database error")]
    Sql(#[from] rusqlite::Error),
    /// "audit writer has stopped".
    #[error("audit writer has stopped")]
    WriterGone,
    /// "audit chain broken at seq {0}".
    #[error("audit chain broken at seq {0}")]
    ChainBroken(u64),
}

type Job = (NewEvent, oneshot::Sender<Result<(u64, [u8; 32]), String>>);

/// Handle to the audit log; cheap to clone.
#[derive(Debug, Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<Job>,
    path: std::path::PathBuf,
}

fn open(path: &Path) -> Result<Connection, AuditError> {
    let conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS ales (
            seq INTEGER PRIMARY KEY,
            session_id TEXT NOT NULL,
            at_ms INTEGER NOT NULL,
            kind TEXT NOT NULL,
            body BLOB NOT NULL,
            prev_span_hash BLOB NOT NULL,
            span_hash BLOB NOT NULL
        );",
    )?;
    Ok(conn)
}

fn tail(conn: &Connection) -> Result<(u64, [u8; 32]), AuditError> {
    let row: Option<(i64, Vec<u8>)> = conn
        .query_row(
            "SELECT seq, span_hash FROM ales ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .ok();
    Ok(match row {
        Some((seq, h)) => (
            u64::try_from(seq).unwrap_or(0),
            <[u8; 32]>::try_from(h.as_slice()).unwrap_or(GENESIS_HASH),
        ),
        None => (0, GENESIS_HASH),
    })
}

fn i64_of(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn writer(mut conn: Connection, rx: mpsc::Receiver<Job>) {
    let Ok((mut seq, mut prev)) = tail(&conn) else {
        return;
    };
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        let (start_seq, start_prev) = (seq, prev);
        let mut acks = Vec::with_capacity(batch.len());
        let outcome = (|| -> Result<(), rusqlite::Error> {
            let tx = conn.transaction()?;
            {
                let mut stmt = tx.prepare_cached(
                    "INSERT INTO ales (seq, session_id, at_ms, kind, body, prev_span_hash, span_hash)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )?;
                for (ev, _) in &batch {
                    seq += 1;
                    let ale = Ale {
                        seq,
                        session_id: ev.session_id.clone(),
                        at_ms: attestation::now_ms(),
                        kind: ev.kind.clone(),
                        body: ev.body.clone(),
                        prev_span_hash: prev.to_vec(),
                    };
                    let h = ale.hash();
                    stmt.execute(params![
                        i64_of(seq),
                        ale.session_id,
                        i64_of(ale.at_ms),
                        ale.kind,
                        ale.body,
                        ale.prev_span_hash,
                        &h[..]
                    ])?;
                    acks.push((seq, h));
                    prev = h;
                }
            }
            tx.commit()
        })();
        match outcome {
            Ok(()) => {
                for ((_, reply), ack) in batch.into_iter().zip(acks) {
                    let _ = reply.send(Ok(ack));
                }
            }
            Err(e) => {
                seq = start_seq;
                prev = start_prev;
                for (_, reply) in batch {
                    let _ = reply.send(Err(e.to_string()));
                }
            }
        }
    }
}

impl AuditLog {
    /// Opens (creating) the log at `path` and starts its writer thread.
    pub fn open(path: &Path) -> Result<Self, AuditError> {
        let conn = open(path)?;
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || writer(conn, rx))
            .map_err(|_| AuditError::WriterGone)?;
        Ok(Self {
            tx,
            path: path.to_path_buf(),
        })
    }

    /// Appends an event; resolves once it is durable, with its sequence number and hash.
    pub async fn append(&self, event: NewEvent) -> Result<(u64, [u8; 32]), AuditError> {
        let (reply, wait) = oneshot::channel();
        self.tx
            .send((event, reply))
            .map_err(|_| AuditError::WriterGone)?;
        match wait.await {
            Ok(Ok(ack)) => Ok(ack),
            Ok(Err(_)) | Err(_) => Err(AuditError::WriterGone),
        }
    }

    /// Reads every ALE back and checks the `prev_span_hash` chain and stored hashes.
    pub fn verify_chain(&self) -> Result<u64, AuditError> {
        let conn = open(&self.path)?;
        let mut stmt = conn.prepare(
            "SELECT seq, session_id, at_ms, kind, body, prev_span_hash, span_hash FROM ales ORDER BY seq",
        )?;
        let mut rows = stmt.query([])?;
        let mut prev = GENESIS_HASH.to_vec();
        let mut n = 0u64;
        while let Some(r) = rows.next()? {
            let seq: i64 = r.get(0)?;
            let seq = u64::try_from(seq).unwrap_or(0);
            let at: i64 = r.get(2)?;
            let ale = Ale {
                seq,
                session_id: r.get(1)?,
                at_ms: u64::try_from(at).unwrap_or(0),
                kind: r.get(3)?,
                body: r.get(4)?,
                prev_span_hash: r.get(5)?,
            };
            let stored: Vec<u8> = r.get(6)?;
            if ale.prev_span_hash != prev || ale.hash().to_vec() != stored || seq != n + 1 {
                return Err(AuditError::ChainBroken(seq));
            }
            prev = stored;
            n += 1;
        }
        Ok(n)
    }

    /// All ALEs of a kind (for tests and operators).
    pub fn events_of_kind(&self, kind: &str) -> Result<Vec<Ale>, AuditError> {
        let conn = open(&self.path)?;
        let mut stmt = conn.prepare(
            "SELECT seq, session_id, at_ms, kind, body, prev_span_hash FROM ales WHERE kind = ?1 ORDER BY seq",
        )?;
        let rows = stmt.query_map(params![kind], |r| {
            let seq: i64 = r.get(0)?;
            let at: i64 = r.get(2)?;
            Ok(Ale {
                seq: u64::try_from(seq).unwrap_or(0),
                session_id: r.get(1)?,
                at_ms: u64::try_from(at).unwrap_or(0),
                kind: r.get(3)?,
                body: r.get(4)?,
                prev_span_hash: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_appends_form_one_chain_that_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.db");
        let log = AuditLog::open(&path).unwrap();
        let mut tasks = Vec::new();
        for i in 0..64u32 {
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                log.append(NewEvent {
                    session_id: format!("s{}", i % 3),
                    kind: "test".into(),
                    body: i.to_be_bytes().to_vec(),
                })
                .await
                .unwrap()
            }));
        }
        let mut seqs: Vec<u64> = Vec::new();
        for t in tasks {
            seqs.push(t.await.unwrap().0);
        }
        seqs.sort();
        assert_eq!(seqs, (1..=64).collect::<Vec<_>>());
        assert_eq!(log.verify_chain().unwrap(), 64);
        drop(log);
        let log = AuditLog::open(&path).unwrap();
        let (seq, _) = log
            .append(NewEvent {
                session_id: "s".into(),
                kind: "test".into(),
                body: vec![],
            })
            .await
            .unwrap();
        assert_eq!(seq, 65);
        assert_eq!(log.verify_chain().unwrap(), 65);

        // Tampering with a stored body breaks the chain.
        let conn = Connection::open(&path).unwrap();
        conn.execute("UPDATE ales SET body = x'ff' WHERE seq = 10", [])
            .unwrap();
        assert!(matches!(
            log.verify_chain(),
            Err(AuditError::ChainBroken(10))
        ));
    }
}
