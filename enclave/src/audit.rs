//! KEE-1 P7: the governance audit log. Every decision and governance event is an Audit Log
//! Event (ALE) chained by `prev_span_hash`; the log is SQLite in WAL mode (the embedded
//! default) with group commit: a writer thread takes every ALE waiting, commits them in one
//! transaction, and only then acknowledges each one. An ALE is acknowledged only once durable.

use rusqlite::{params, Connection};
use std::path::Path;
use std::sync::mpsc;
use tokio::sync::oneshot;

/// Most ALEs committed in one transaction.
pub const MAX_GROUP: usize = 4096;
/// Hash of "no previous event".
pub const GENESIS_HASH: [u8; 32] = attestation::gar::GENESIS_HASH;

pub use attestation::gar::{Ale, Block, BlockSignature};

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
    /// "nothing is anchored yet: no signed block to export".
    #[error("nothing is anchored yet: no signed block to export")]
    NothingAnchored,
    /// "audit package: {0}".
    #[error("audit package: {0}")]
    Package(String),
}

type Job = (NewEvent, oneshot::Sender<Result<(u64, [u8; 32]), String>>);

/// Handle to the audit log; cheap to clone.
#[derive(Debug, Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<Job>,
    path: std::path::PathBuf,
    /// The block closer's own connection (blocks are written beside the ALEs).
    blocks: std::sync::Arc<std::sync::Mutex<Connection>>,
    /// Every ALE at or below this sequence number is in a block.
    watermark: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Spans of GAR writes and block closes (KEE-1 P6); off unless a kernel sets it.
    otel: crate::otel::Telemetry,
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
        );
        CREATE TABLE IF NOT EXISTS blocks (
            height INTEGER PRIMARY KEY,
            block_id BLOB NOT NULL,
            session_id TEXT NOT NULL,
            count INTEGER NOT NULL,
            root BLOB NOT NULL,
            prev_root BLOB NOT NULL,
            cap_profile_hash BLOB NOT NULL,
            closed_at_ms INTEGER NOT NULL,
            signature BLOB,
            signers TEXT,
            signed_at_ms INTEGER,
            group_public_key BLOB
        );
        CREATE TABLE IF NOT EXISTS block_ales (
            seq INTEGER PRIMARY KEY,
            height INTEGER NOT NULL
        );
        CREATE INDEX IF NOT EXISTS block_ales_height ON block_ales (height);
        CREATE TABLE IF NOT EXISTS ended_sessions (session_id TEXT PRIMARY KEY);",
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
        let blocks = open(path)?;
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || writer(conn, rx))
            .map_err(|_| AuditError::WriterGone)?;
        Ok(Self {
            tx,
            path: path.to_path_buf(),
            blocks: std::sync::Arc::new(std::sync::Mutex::new(blocks)),
            watermark: std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0)),
            otel: crate::otel::Telemetry::off(),
        })
    }

    /// This log, with GAR write and block close spans made by `otel`.
    pub fn with_telemetry(mut self, otel: crate::otel::Telemetry) -> Self {
        self.otel = otel;
        self
    }

    /// Appends an event; resolves once it is durable, with its sequence number and hash.
    /// One `soos.governance.gar.write` span per append, in the event's session trace.
    pub async fn append(&self, event: NewEvent) -> Result<(u64, [u8; 32]), AuditError> {
        let mut span = self
            .otel
            .span(crate::otel::names::GAR_WRITE, &event.session_id);
        span.set_attr("soos.ale.kind", event.kind.clone());
        let (reply, wait) = oneshot::channel();
        self.tx.send((event, reply)).map_err(|_| {
            span.fail("audit writer has stopped");
            AuditError::WriterGone
        })?;
        match wait.await {
            Ok(Ok(ack)) => {
                span.set_u64("soos.ale.seq", ack.0);
                span.set_hex("soos.ale.hash", &ack.1);
                Ok(ack)
            }
            Ok(Err(e)) => {
                span.fail(e);
                Err(AuditError::WriterGone)
            }
            Err(_) => {
                span.fail("audit writer has stopped");
                Err(AuditError::WriterGone)
            }
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

/// When open session blocks close (KEE-1 P7 session blocks).
#[derive(Debug, Clone, Copy)]
pub struct ClosePolicy {
    /// Close every open block (the anchor interval elapsed).
    pub all: bool,
    /// Most ALEs in one block; a session reaching it closes a block at once.
    pub max_ales: usize,
}

/// What an export wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ExportSummary {
    /// The package directory.
    pub dir: std::path::PathBuf,
    /// ALEs exported (1..=ales).
    pub ales: u64,
    /// Blocks exported (1..=blocks).
    pub blocks: u64,
}

fn ale_of_row(r: &rusqlite::Row<'_>) -> Result<Ale, rusqlite::Error> {
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
}

fn u64_of(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn block_of_row(conn: &Connection, r: &rusqlite::Row<'_>) -> Result<Block, rusqlite::Error> {
    let height: i64 = r.get(0)?;
    let closed: i64 = r.get(6)?;
    let mut stmt =
        conn.prepare_cached("SELECT seq FROM block_ales WHERE height = ?1 ORDER BY seq")?;
    let seqs = stmt
        .query_map(params![height], |r| r.get::<_, i64>(0))?
        .map(|s| s.map(u64_of))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Block {
        height: u64_of(height),
        block_id: r.get(1)?,
        session_id: r.get(2)?,
        seqs,
        root: r.get(3)?,
        prev_root: r.get(4)?,
        cap_profile_hash: r.get(5)?,
        closed_at_ms: u64_of(closed),
    })
}

const BLOCK_COLUMNS: &str =
    "height, block_id, session_id, root, prev_root, cap_profile_hash, closed_at_ms";

impl AuditLog {
    fn block_conn(&self) -> Result<std::sync::MutexGuard<'_, Connection>, AuditError> {
        self.blocks.lock().map_err(|_| AuditError::WriterGone)
    }

    /// Marks a session ended: its open block closes at the next [`AuditLog::close_blocks`].
    pub fn end_session(&self, session_id: &str) -> Result<(), AuditError> {
        self.block_conn()?.execute(
            "INSERT OR IGNORE INTO ended_sessions (session_id) VALUES (?1)",
            params![session_id],
        )?;
        Ok(())
    }

    /// Closes session blocks: every open one with `policy.all`, else those of ended sessions
    /// and full ones. Each block gets its RFC 9162 root and the previous block's root, in one
    /// transaction; returns the heights closed.
    pub fn close_blocks(
        &self,
        policy: ClosePolicy,
        cap_profile_hash: [u8; 32],
    ) -> Result<Vec<u64>, AuditError> {
        use std::sync::atomic::Ordering;
        let max = policy.max_ales.clamp(1, attestation::gar::MAX_BLOCK_ALES);
        let mut conn = self.block_conn()?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mark = self.watermark.load(Ordering::Acquire);
        let open: Vec<Ale> = {
            let mut stmt = tx.prepare_cached(
                "SELECT a.seq, a.session_id, a.at_ms, a.kind, a.body, a.prev_span_hash
                 FROM ales a LEFT JOIN block_ales b ON a.seq = b.seq
                 WHERE b.seq IS NULL AND a.seq > ?1 ORDER BY a.seq",
            )?;
            let rows = stmt.query_map(params![i64_of(mark)], ale_of_row)?;
            rows.collect::<Result<Vec<_>, _>>()?
        };
        let ended: std::collections::HashSet<String> = {
            let mut stmt = tx.prepare_cached("SELECT session_id FROM ended_sessions")?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
            rows.collect::<Result<_, _>>()?
        };
        // Sessions in order of their first open ALE.
        let mut order: Vec<String> = Vec::new();
        let mut by_session: std::collections::HashMap<String, Vec<Ale>> =
            std::collections::HashMap::new();
        for a in open {
            let entry = by_session.entry(a.session_id.clone()).or_default();
            if entry.is_empty() {
                order.push(a.session_id.clone());
            }
            entry.push(a);
        }
        let (mut height, mut prev_root): (u64, Vec<u8>) = tx
            .query_row(
                "SELECT height, root FROM blocks ORDER BY height DESC LIMIT 1",
                [],
                |r| Ok((u64_of(r.get(0)?), r.get(1)?)),
            )
            .unwrap_or((0, GENESIS_HASH.to_vec()));
        let mut closed = Vec::new();
        let mut still_open: Option<u64> = None;
        let now = attestation::now_ms();
        for session in order {
            let Some(ales) = by_session.remove(&session) else {
                continue;
            };
            let close_rest = policy.all || ended.contains(&session);
            for chunk in ales.chunks(max) {
                if chunk.len() < max && !close_rest {
                    if let Some(first) = chunk.first() {
                        still_open = Some(still_open.map_or(first.seq, |s| s.min(first.seq)));
                    }
                    continue;
                }
                height += 1;
                let root = attestation::gar::merkle_root(
                    &chunk.iter().map(Ale::to_bytes).collect::<Vec<_>>(),
                );
                tx.execute(
                    "INSERT INTO blocks (height, block_id, session_id, count, root, prev_root, cap_profile_hash, closed_at_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    params![
                        i64_of(height),
                        &attestation::gar::trace_id(&session)[..],
                        session,
                        i64_of(chunk.len() as u64),
                        &root[..],
                        prev_root,
                        &cap_profile_hash[..],
                        i64_of(now)
                    ],
                )?;
                let mut ins =
                    tx.prepare_cached("INSERT INTO block_ales (seq, height) VALUES (?1, ?2)")?;
                for a in chunk {
                    ins.execute(params![i64_of(a.seq), i64_of(height)])?;
                }
                let mut span = self
                    .otel
                    .span(crate::otel::names::GAR_BLOCK_CLOSE, &session);
                span.set_hex("soos.gar.block_id", &attestation::gar::trace_id(&session));
                span.set_u64("soos.gar.height", height);
                span.set_hex("soos.gar.root", &root);
                span.set_hex("soos.gar.prev_root", &prev_root);
                span.set_u64("soos.gar.ales", chunk.len() as u64);
                span.set_hex("soos.cap_profile_hash", &cap_profile_hash);
                prev_root = root.to_vec();
                closed.push(height);
            }
            if close_rest {
                tx.execute(
                    "DELETE FROM ended_sessions WHERE session_id = ?1",
                    params![session],
                )?;
            }
        }
        let max_seen: i64 =
            tx.query_row("SELECT COALESCE(MAX(seq), 0) FROM block_ales", [], |r| {
                r.get(0)
            })?;
        tx.commit()?;
        let new_mark = match still_open {
            Some(s) => s.saturating_sub(1),
            None => u64_of(max_seen).max(mark),
        };
        self.watermark.store(new_mark.max(mark), Ordering::Release);
        Ok(closed)
    }

    /// ALEs `lo..=hi`, in order.
    pub fn read_range(&self, lo: u64, hi: u64) -> Result<Vec<Ale>, AuditError> {
        let conn = open(&self.path)?;
        let mut stmt = conn.prepare(
            "SELECT seq, session_id, at_ms, kind, body, prev_span_hash FROM ales
             WHERE seq BETWEEN ?1 AND ?2 ORDER BY seq",
        )?;
        let rows = stmt.query_map(params![i64_of(lo), i64_of(hi)], ale_of_row)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Re-checks every stored block: its ALEs exist, belong to its session and give its
    /// root; heights are gap-free and each block names its predecessor's root. Returns the
    /// number of blocks.
    pub fn verify_blocks(&self) -> Result<u64, AuditError> {
        let conn = open(&self.path)?;
        let mut stmt = conn.prepare(&format!(
            "SELECT {BLOCK_COLUMNS} FROM blocks ORDER BY height"
        ))?;
        let mut rows = stmt.query([])?;
        let mut prev = GENESIS_HASH.to_vec();
        let mut n = 0u64;
        let mut get = conn.prepare(
            "SELECT seq, session_id, at_ms, kind, body, prev_span_hash FROM ales WHERE seq = ?1",
        )?;
        while let Some(r) = rows.next()? {
            let b = block_of_row(&conn, r)?;
            n += 1;
            let broken = || AuditError::Package(format!("block {} does not verify", b.height));
            if b.height != n || b.prev_root != prev || b.seqs.is_empty() {
                return Err(broken());
            }
            let mut leaves = Vec::with_capacity(b.seqs.len());
            for s in &b.seqs {
                let a = get
                    .query_row(params![i64_of(*s)], ale_of_row)
                    .map_err(|_| broken())?;
                if a.session_id != b.session_id {
                    return Err(broken());
                }
                leaves.push(a.to_bytes());
            }
            if attestation::gar::merkle_root(&leaves).as_slice() != b.root.as_slice() {
                return Err(broken());
            }
            prev = b.root;
        }
        Ok(n)
    }

    /// Closed blocks that no quorum has signed yet, lowest height first.
    pub fn pending_blocks(&self) -> Result<Vec<Block>, AuditError> {
        let conn = self.block_conn()?;
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {BLOCK_COLUMNS} FROM blocks WHERE signature IS NULL ORDER BY height"
        ))?;
        let mut rows = stmt.query([])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(block_of_row(&conn, r)?);
        }
        Ok(out)
    }

    /// Stores a block's group signature (made by at least t kernels).
    pub fn store_signature(
        &self,
        height: u64,
        signature: &[u8],
        signers: &[String],
        group_public_key: &[u8],
    ) -> Result<(), AuditError> {
        self.block_conn()?.execute(
            "UPDATE blocks SET signature = ?2, signers = ?3, signed_at_ms = ?4, group_public_key = ?5
             WHERE height = ?1 AND signature IS NULL",
            params![
                i64_of(height),
                signature,
                signers.join(","),
                i64_of(attestation::now_ms()),
                group_public_key
            ],
        )?;
        Ok(())
    }

    /// Blocks closed and blocks signed.
    pub fn block_counts(&self) -> Result<(u64, u64), AuditError> {
        let conn = self.block_conn()?;
        let (all, signed): (i64, i64) =
            conn.query_row("SELECT COUNT(*), COUNT(signature) FROM blocks", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?;
        Ok((u64_of(all), u64_of(signed)))
    }

    /// Distinct blocks holding ALEs `lo..=hi` and how many of those ALEs are in a block.
    pub fn blocks_covering(&self, lo: u64, hi: u64) -> Result<(u64, u64), AuditError> {
        let conn = self.block_conn()?;
        let (blocks, ales): (i64, i64) = conn.query_row(
            "SELECT COUNT(DISTINCT height), COUNT(*) FROM block_ales WHERE seq BETWEEN ?1 AND ?2",
            params![i64_of(lo), i64_of(hi)],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok((u64_of(blocks), u64_of(ales)))
    }

    /// Builds the audit package of the longest anchored prefix: blocks 1..=H, all signed,
    /// whose ALEs are exactly 1..=N.
    pub fn package(&self, kernel_id: &str) -> Result<attestation::gar::Package, AuditError> {
        use attestation::gar::{BlockSignature, Package, PackageManifest, PACKAGE_FORMAT};
        let conn = open(&self.path)?;
        let mut blocks = Vec::new();
        let mut sigs = Vec::new();
        let mut group: Option<Vec<u8>> = None;
        let (mut count, mut max) = (0u64, 0u64);
        let mut cut = (0usize, 0u64);
        {
            let mut stmt = conn.prepare(&format!(
                "SELECT {BLOCK_COLUMNS}, signature, signers, signed_at_ms, group_public_key FROM blocks ORDER BY height"
            ))?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                let sig: Option<Vec<u8>> = r.get(7)?;
                let Some(signature) = sig else { break };
                let b = block_of_row(&conn, r)?;
                let signers: Option<String> = r.get(8)?;
                let at: Option<i64> = r.get(9)?;
                let key: Option<Vec<u8>> = r.get(10)?;
                match (&group, key) {
                    (None, Some(k)) => group = Some(k),
                    (Some(g), Some(k)) if *g != k => {
                        return Err(AuditError::Package(format!(
                            "block {} is signed under another group key",
                            b.height
                        )))
                    }
                    _ => {}
                }
                count += b.seqs.len() as u64;
                max = max.max(b.seqs.last().copied().unwrap_or(0));
                sigs.push(BlockSignature {
                    height: b.height,
                    signature,
                    signers: signers
                        .unwrap_or_default()
                        .split(',')
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect(),
                    signed_at_ms: at.map_or(0, u64_of),
                });
                blocks.push(b);
                if count == max {
                    cut = (blocks.len(), max);
                }
            }
        }
        blocks.truncate(cut.0);
        sigs.truncate(cut.0);
        let (Some(group), true) = (group, cut.0 > 0) else {
            return Err(AuditError::NothingAnchored);
        };
        let mut ales = Vec::new();
        {
            let mut stmt = conn.prepare(
                "SELECT seq, session_id, at_ms, kind, body, prev_span_hash FROM ales WHERE seq <= ?1 ORDER BY seq",
            )?;
            let rows = stmt.query_map(params![i64_of(cut.1)], ale_of_row)?;
            for a in rows {
                ales.push(a?.to_bytes());
            }
        }
        Ok(Package {
            manifest: PackageManifest {
                format: PACKAGE_FORMAT.into(),
                kernel_id: kernel_id.into(),
                group_public_key: hex::encode(&group),
                ales: ales.len() as u64,
                blocks: blocks.len() as u64,
                exported_at_ms: attestation::now_ms(),
            },
            ales,
            blocks,
            signatures: sigs,
            group_public_key: group,
        })
    }

    /// Writes [`AuditLog::package`] into `dir` (created).
    pub fn export(&self, kernel_id: &str, dir: &Path) -> Result<ExportSummary, AuditError> {
        let p = self.package(kernel_id)?;
        write_package(&p, dir)?;
        Ok(ExportSummary {
            dir: dir.to_path_buf(),
            ales: p.manifest.ales,
            blocks: p.manifest.blocks,
        })
    }
}

/// Writes a package's files into `dir` (created).
pub fn write_package(p: &attestation::gar::Package, dir: &Path) -> Result<(), AuditError> {
    use attestation::gar::files;
    let io = |e: std::io::Error| AuditError::Package(format!("{}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(io)?;
    let [m, a, b, s, g] = p
        .to_files()
        .map_err(|e| AuditError::Package(e.to_string()))?;
    for (name, bytes) in [
        (files::MANIFEST, m),
        (files::ALES, a),
        (files::BLOCKS, b),
        (files::SIGNATURES, s),
        (files::GROUP_KEY, g),
    ] {
        std::fs::write(dir.join(name), bytes).map_err(io)?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, reason = "tests")]
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn session_blocks_close_by_session_size_and_interval_and_the_export_verifies() {
        use ring::signature::KeyPair;
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(&dir.path().join("audit.db")).unwrap();
        let append = |s: &'static str, i: u32| {
            let log = log.clone();
            async move {
                log.append(NewEvent {
                    session_id: s.into(),
                    kind: "test".into(),
                    body: i.to_be_bytes().to_vec(),
                })
                .await
                .unwrap()
            }
        };
        for i in 0..10 {
            append(if i % 2 == 0 { "a" } else { "b" }, i).await;
        }
        let policy = |all| ClosePolicy { all, max_ales: 4 };
        // Size: one full block of "a" and one of "b"; the rest stays open.
        assert_eq!(
            log.close_blocks(policy(false), [1; 32]).unwrap(),
            vec![1, 2]
        );
        // Session end closes "a"'s rest only.
        log.end_session("a").unwrap();
        assert_eq!(log.close_blocks(policy(false), [1; 32]).unwrap(), vec![3]);
        assert!(log.close_blocks(policy(false), [1; 32]).unwrap().is_empty());
        // The interval closes everything open.
        append("c", 10).await;
        assert_eq!(log.close_blocks(policy(true), [1; 32]).unwrap(), vec![4, 5]);
        assert_eq!(log.verify_blocks().unwrap(), 5);
        let pending = log.pending_blocks().unwrap();
        assert_eq!(pending.len(), 5);
        assert_eq!(pending[0].seqs, vec![1, 3, 5, 7]);
        assert_eq!(pending[2].seqs, vec![9]);
        assert_eq!(pending[3].seqs, vec![10]);
        assert_eq!(
            pending[0].block_id,
            attestation::gar::trace_id("a").to_vec()
        );
        // Nothing signed: nothing to export.
        assert!(matches!(log.package("k"), Err(AuditError::NothingAnchored)));

        // Sign (an Ed25519 key stands in for the FROST group: same verification).
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let key = ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let public = key.public_key().as_ref().to_vec();
        for b in &pending[..3] {
            let sig = key.sign(&b.signing_digest());
            log.store_signature(b.height, sig.as_ref(), &["k1".into(), "k2".into()], &public)
                .unwrap();
        }
        // Blocks 1..=3 cover ALEs 1..=9 exactly: the anchored prefix.
        let p = log.package("k").unwrap();
        assert_eq!((p.ales.len(), p.blocks.len()), (9, 3));
        for b in &pending[3..] {
            let sig = key.sign(&b.signing_digest());
            log.store_signature(b.height, sig.as_ref(), &["k1".into(), "k3".into()], &public)
                .unwrap();
        }
        let out = dir.path().join("pkg");
        let summary = log.export("k", &out).unwrap();
        assert_eq!((summary.ales, summary.blocks), (11, 5));
        let read = |f: &str| std::fs::read(out.join(f)).unwrap();
        use attestation::gar::files;
        let p = attestation::gar::Package::parse(
            &read(files::MANIFEST),
            &read(files::ALES),
            &read(files::BLOCKS),
            &read(files::SIGNATURES),
            &read(files::GROUP_KEY),
        )
        .unwrap();
        let r = attestation::gar::verify_package(&p, Some(7), Some(&public));
        assert!(r.verified, "{:?}", r.checks);
        assert_eq!(r.inclusion.unwrap().leaf_index, 3);
    }
}
