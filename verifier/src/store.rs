//! Persistent verifier state in SQLite (WAL mode): the result-signing key, registered kernels,
//! wrap keys, issued nonces (single use, with expiry) and the latest result per kernel; the
//! re-attestation registry lives in the same file (see [`crate::registry`]).
//!
//! Durability: security-relevant transitions (signing key, registrations, wrap-key release,
//! revocations, operator commands) commit with `synchronous=FULL`, which also makes every
//! earlier commit durable; routine re-attestation writes (nonces, results, history) commit
//! with `synchronous=NORMAL`, which survives a process crash but may lose the last commits to
//! a power failure. A lost "used" mark cannot reopen a nonce: the service voids every
//! outstanding nonce when it starts ([`Store::void_outstanding_nonces`]).

use rusqlite::{params, Connection, OptionalExtension};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

/// Errors of the state store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// "verifier database error".
    #[error("verifier database error")]
    Sql(#[from] rusqlite::Error),
    /// "verifier database lock poisoned".
    #[error("verifier database lock poisoned")]
    Poisoned,
    /// "verifier database holds a malformed value: {0}".
    #[error("verifier database holds a malformed value: {0}")]
    Corrupt(String),
}

/// Outcome of consuming a nonce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceUse {
    /// Issued to this kernel, unexpired, now marked used.
    Fresh,
    /// Never issued.
    Unknown,
    /// Already used once (replay).
    Replayed,
    /// Past its expiry.
    Expired,
    /// Issued to another kernel.
    WrongKernel,
}

/// A registered kernel's wrap key and the reference digest its share was sealed under.
#[derive(Debug, Clone)]
pub struct WrapKeyRecord {
    /// The AES-256-GCM wrap key.
    pub wrap_key: [u8; 32],
    /// Reference digest (AAD part).
    pub reference_digest: Vec<u8>,
}

/// The SQLite-backed store. One connection behind a mutex: the verifier's load is a few
/// appraisals per kernel boot, far below what one SQLite connection serves.
#[derive(Debug)]
pub struct Store {
    conn: Mutex<Connection>,
    path: std::path::PathBuf,
}

/// How often the service's background checkpointer folds the WAL into the database.
pub const CHECKPOINT_EVERY_MS: u64 = 1_000;
/// WAL size above which [`Store::bound_wal`] truncates it. A passive checkpoint never resets
/// a WAL that is written to continuously, so without this the file would grow for as long as
/// the service is busy.
pub const WAL_TRUNCATE_BYTES: u64 = 64 << 20;

/// A background thread that checkpoints the WAL from its own connection, so that the
/// connection serving requests never stalls on a checkpoint's fsyncs. Stops when dropped.
#[derive(Debug)]
pub struct Checkpointer {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS signing_key (id INTEGER PRIMARY KEY CHECK (id = 1), pkcs8 BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS kernels (
    kernel_id TEXT PRIMARY KEY,
    ceremony_id TEXT NOT NULL,
    wrap_key BLOB NOT NULL,
    reference_digest BLOB NOT NULL,
    group_public_key BLOB NOT NULL,
    registered_at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS nonces (
    nonce BLOB PRIMARY KEY,
    kernel_id TEXT NOT NULL,
    issued_at_ms INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL,
    used_at_ms INTEGER
);
CREATE TABLE IF NOT EXISTS results (
    kernel_id TEXT PRIMARY KEY,
    issued_at_ms INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL,
    status TEXT NOT NULL,
    bundle_digest BLOB NOT NULL,
    result BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS appraisals (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kernel_id TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    status TEXT NOT NULL,
    reasons TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS nonces_expiry ON nonces (expires_at_ms);
CREATE INDEX IF NOT EXISTS appraisals_kernel ON appraisals (kernel_id, seq);
CREATE INDEX IF NOT EXISTS appraisals_time ON appraisals (at_ms);
";

pub(crate) fn ms(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(crate) fn unms(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// One registration for [`Store::register_kernels`].
#[derive(Debug, Clone)]
pub struct Registration {
    /// Kernel id.
    pub kernel_id: String,
    /// Ceremony that sealed its share.
    pub ceremony_id: String,
    /// Its wrap key.
    pub wrap_key: [u8; 32],
    /// Reference digest the share is sealed under.
    pub reference_digest: Vec<u8>,
    /// The group's public key.
    pub group_public_key: Vec<u8>,
}

impl Store {
    /// Opens (creating if needed) the database at `path` in WAL mode.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let mut conn = Connection::open(path)?;
        // Write transactions take the write lock at BEGIN: a deferred one that read first
        // could fail to upgrade while another connection (the CLI, a checkpoint) writes.
        conn.set_transaction_behavior(rusqlite::TransactionBehavior::Immediate);
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        conn.execute_batch(crate::registry::SCHEMA)?;
        Ok(Self {
            conn: Mutex::new(conn),
            path: path.to_path_buf(),
        })
    }

    /// Turns off automatic checkpoints on the serving connection and checkpoints from a
    /// background thread instead: `PRAGMA wal_checkpoint(PASSIVE)` every
    /// [`CHECKPOINT_EVERY_MS`], which copies pages without ever taking the writer's lock. The
    /// service bounds the WAL with [`Store::bound_wal`].
    pub fn start_checkpointer(&self) -> Result<Checkpointer, StoreError> {
        let own = Connection::open(&self.path)?;
        own.busy_timeout(std::time::Duration::from_secs(5))?;
        self.lock()?.pragma_update(None, "wal_autocheckpoint", 0)?;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        std::thread::Builder::new()
            .name("verifier-ckpt".into())
            .spawn(move || {
                while !stopped.load(std::sync::atomic::Ordering::SeqCst) {
                    std::thread::sleep(std::time::Duration::from_millis(CHECKPOINT_EVERY_MS));
                    if let Err(e) = own.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                    {
                        tracing::warn!(error = %e, "wal checkpoint failed");
                    }
                }
            })
            .map_err(|_| StoreError::Poisoned)?;
        Ok(Checkpointer { stop })
    }

    /// Once the WAL exceeds [`WAL_TRUNCATE_BYTES`], checkpoints it with `TRUNCATE` from the
    /// serving connection (so no other connection can hold the writer's lock meanwhile). The
    /// background passive checkpoints have already copied nearly every page, so this costs
    /// the serving connection about one fsync.
    pub fn bound_wal(&self) -> Result<(), StoreError> {
        let mut wal = self.path.clone().into_os_string();
        wal.push("-wal");
        let size = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
        if size > WAL_TRUNCATE_BYTES {
            self.lock()?
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        }
        Ok(())
    }

    pub(crate) fn lock(&self) -> Result<MutexGuard<'_, Connection>, StoreError> {
        self.conn.lock().map_err(|_| StoreError::Poisoned)
    }

    /// Runs `f` with `synchronous=FULL`: its commit (and every earlier one) is on disk when
    /// this returns.
    pub(crate) fn durable<R>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<R, rusqlite::Error>,
    ) -> Result<R, StoreError> {
        let mut conn = self.lock()?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        let out = f(&mut conn);
        let back = conn.pragma_update(None, "synchronous", "NORMAL");
        let out = out?;
        back?;
        Ok(out)
    }

    /// The stored result-signing key, creating one with `make` on first use.
    pub fn signing_key(
        &self,
        make: impl FnOnce() -> Option<Vec<u8>>,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.durable(|conn| {
            let existing: Option<Vec<u8>> = conn
                .query_row("SELECT pkcs8 FROM signing_key WHERE id = 1", [], |r| {
                    r.get(0)
                })
                .optional()?;
            if existing.is_some() {
                return Ok(existing);
            }
            let Some(new) = make() else { return Ok(None) };
            conn.execute(
                "INSERT INTO signing_key (id, pkcs8) VALUES (1, ?1)",
                params![new],
            )?;
            Ok(Some(new))
        })
    }

    /// Registers (or re-registers) a kernel with its wrap key. A re-registration (new
    /// ceremony, new share) resets its re-attestation record to `registered`.
    pub fn register_kernel(
        &self,
        kernel_id: &str,
        ceremony_id: &str,
        wrap_key: &[u8; 32],
        reference_digest: &[u8],
        group_public_key: &[u8],
        now_ms: u64,
    ) -> Result<(), StoreError> {
        self.register_kernels(
            &[Registration {
                kernel_id: kernel_id.to_string(),
                ceremony_id: ceremony_id.to_string(),
                wrap_key: *wrap_key,
                reference_digest: reference_digest.to_vec(),
                group_public_key: group_public_key.to_vec(),
            }],
            now_ms,
        )
    }

    /// Registers many kernels in one durable transaction.
    pub fn register_kernels(&self, regs: &[Registration], now_ms: u64) -> Result<(), StoreError> {
        self.durable(|conn| {
            let tx = conn.transaction()?;
            for r in regs {
                tx.execute(
                    "INSERT OR REPLACE INTO kernels VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![
                        r.kernel_id,
                        r.ceremony_id,
                        &r.wrap_key[..],
                        r.reference_digest,
                        r.group_public_key,
                        ms(now_ms)
                    ],
                )?;
                crate::registry::reset_registration(&tx, &r.kernel_id, now_ms)?;
            }
            tx.commit()
        })
    }

    /// Voids every nonce issued and not yet used (they expire now): called when the service
    /// starts, so that no nonce issued before a crash can be used after it.
    pub fn void_outstanding_nonces(&self, now_ms: u64) -> Result<usize, StoreError> {
        self.durable(|conn| {
            conn.execute(
                "UPDATE nonces SET expires_at_ms = ?1 - 1 WHERE used_at_ms IS NULL AND expires_at_ms >= ?1",
                params![ms(now_ms)],
            )
        })
    }

    /// Deletes nonces that expired more than an hour ago and appraisal log entries older than
    /// `history_before_ms`.
    pub fn purge(&self, now_ms: u64, history_before_ms: u64) -> Result<(), StoreError> {
        let conn = self.lock()?;
        conn.execute(
            "DELETE FROM nonces WHERE expires_at_ms < ?1",
            params![ms(now_ms.saturating_sub(3_600_000))],
        )?;
        conn.execute(
            "DELETE FROM appraisals WHERE at_ms < ?1",
            params![ms(history_before_ms)],
        )?;
        Ok(())
    }

    /// Whether a kernel is registered.
    pub fn is_registered(&self, kernel_id: &str) -> Result<bool, StoreError> {
        let n: i64 = self.lock()?.query_row(
            "SELECT COUNT(*) FROM kernels WHERE kernel_id = ?1",
            params![kernel_id],
            |r| r.get(0),
        )?;
        Ok(n > 0)
    }

    /// The kernel's wrap key.
    pub fn wrap_key(&self, kernel_id: &str) -> Result<Option<WrapKeyRecord>, StoreError> {
        let row: Option<(Vec<u8>, Vec<u8>)> = self
            .lock()?
            .query_row(
                "SELECT wrap_key, reference_digest FROM kernels WHERE kernel_id = ?1",
                params![kernel_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        Ok(row.and_then(|(k, reference_digest)| {
            <[u8; 32]>::try_from(k.as_slice())
                .ok()
                .map(|wrap_key| WrapKeyRecord {
                    wrap_key,
                    reference_digest,
                })
        }))
    }

    /// Records a newly issued nonce.
    pub fn issue_nonce(
        &self,
        nonce: &[u8],
        kernel_id: &str,
        now_ms: u64,
        expires_at_ms: u64,
    ) -> Result<(), StoreError> {
        let conn = self.lock()?;
        conn.execute(
            "INSERT INTO nonces (nonce, kernel_id, issued_at_ms, expires_at_ms) VALUES (?1, ?2, ?3, ?4)",
            params![nonce, kernel_id, ms(now_ms), ms(expires_at_ms)],
        )?;
        Ok(())
    }

    /// Consumes a nonce: single use, whatever the appraisal outcome.
    pub fn use_nonce(
        &self,
        nonce: &[u8],
        kernel_id: &str,
        now_ms: u64,
    ) -> Result<NonceUse, StoreError> {
        let mut conn = self.lock()?;
        let tx = conn.transaction()?;
        let row: Option<(String, i64, Option<i64>)> = tx
            .query_row(
                "SELECT kernel_id, expires_at_ms, used_at_ms FROM nonces WHERE nonce = ?1",
                params![nonce],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let outcome = match row {
            None => NonceUse::Unknown,
            Some((_, _, Some(_))) => NonceUse::Replayed,
            Some((k, _, None)) if k != kernel_id => NonceUse::WrongKernel,
            Some((_, exp, None)) if ms(now_ms) > exp => NonceUse::Expired,
            Some(_) => NonceUse::Fresh,
        };
        if matches!(
            outcome,
            NonceUse::Fresh | NonceUse::Expired | NonceUse::WrongKernel
        ) {
            tx.execute(
                "UPDATE nonces SET used_at_ms = ?2 WHERE nonce = ?1",
                params![nonce, ms(now_ms)],
            )?;
        }
        tx.commit()?;
        Ok(outcome)
    }

    /// Stores the latest result for a kernel and logs the appraisal.
    #[expect(clippy::too_many_arguments, reason = "one row of one table")]
    pub fn record_result(
        &self,
        kernel_id: &str,
        issued_at_ms: u64,
        expires_at_ms: u64,
        status: &str,
        bundle_digest: &[u8],
        result: &[u8],
        reasons: &[String],
    ) -> Result<(), StoreError> {
        let mut conn = self.lock()?;
        let tx = conn.transaction()?;
        tx.execute(
            "INSERT OR REPLACE INTO results VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                kernel_id,
                ms(issued_at_ms),
                ms(expires_at_ms),
                status,
                bundle_digest,
                result
            ],
        )?;
        tx.execute(
            "INSERT INTO appraisals (kernel_id, at_ms, status, reasons) VALUES (?1, ?2, ?3, ?4)",
            params![kernel_id, ms(issued_at_ms), status, reasons.join("; ")],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Latest result of a kernel: (status, expires_at_ms, bundle digest).
    pub fn latest_result(
        &self,
        kernel_id: &str,
    ) -> Result<Option<(String, u64, Vec<u8>)>, StoreError> {
        let row: Option<(String, i64, Vec<u8>)> = self
            .lock()?
            .query_row(
                "SELECT status, expires_at_ms, bundle_digest FROM results WHERE kernel_id = ?1",
                params![kernel_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        Ok(row.map(|(s, e, d)| (s, u64::try_from(e).unwrap_or(0), d)))
    }

    /// Number of appraisals logged (for operators and tests).
    pub fn appraisal_count(&self, kernel_id: &str) -> Result<u64, StoreError> {
        let n: i64 = self.lock()?.query_row(
            "SELECT COUNT(*) FROM appraisals WHERE kernel_id = ?1",
            params![kernel_id],
            |r| r.get(0),
        )?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_are_single_use_and_expire() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("v.db")).unwrap();
        s.issue_nonce(&[1; 32], "k1", 1000, 2000).unwrap();
        assert_eq!(s.use_nonce(&[1; 32], "k1", 1500).unwrap(), NonceUse::Fresh);
        assert_eq!(
            s.use_nonce(&[1; 32], "k1", 1500).unwrap(),
            NonceUse::Replayed
        );
        s.issue_nonce(&[2; 32], "k1", 1000, 2000).unwrap();
        assert_eq!(
            s.use_nonce(&[2; 32], "k1", 2001).unwrap(),
            NonceUse::Expired
        );
        s.issue_nonce(&[3; 32], "k1", 1000, 2000).unwrap();
        assert_eq!(
            s.use_nonce(&[3; 32], "k2", 1500).unwrap(),
            NonceUse::WrongKernel
        );
        assert_eq!(
            s.use_nonce(&[3; 32], "k1", 1500).unwrap(),
            NonceUse::Replayed
        );
        assert_eq!(
            s.use_nonce(&[9; 32], "k1", 1500).unwrap(),
            NonceUse::Unknown
        );
        // State survives reopening (real file).
        drop(s);
        let s = Store::open(&dir.path().join("v.db")).unwrap();
        assert_eq!(
            s.use_nonce(&[1; 32], "k1", 1500).unwrap(),
            NonceUse::Replayed
        );
    }
}
