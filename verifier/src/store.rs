//! Persistent verifier state in SQLite (WAL mode): the result-signing key, registered kernels,
//! wrap keys, issued nonces (single use, with expiry) and the latest result per kernel.

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
";

fn ms(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Store {
    /// Opens (creating if needed) the database at `path` in WAL mode.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    fn lock(&self) -> Result<MutexGuard<'_, Connection>, StoreError> {
        self.conn.lock().map_err(|_| StoreError::Poisoned)
    }

    /// The stored result-signing key, creating one with `make` on first use.
    pub fn signing_key(
        &self,
        make: impl FnOnce() -> Option<Vec<u8>>,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let conn = self.lock()?;
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
    }

    /// Registers (or re-registers) a kernel with its wrap key.
    pub fn register_kernel(
        &self,
        kernel_id: &str,
        ceremony_id: &str,
        wrap_key: &[u8; 32],
        reference_digest: &[u8],
        group_public_key: &[u8],
        now_ms: u64,
    ) -> Result<(), StoreError> {
        self.lock()?.execute(
            "INSERT OR REPLACE INTO kernels VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                kernel_id,
                ceremony_id,
                &wrap_key[..],
                reference_digest,
                group_public_key,
                ms(now_ms)
            ],
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
            "DELETE FROM nonces WHERE expires_at_ms < ?1",
            params![ms(now_ms.saturating_sub(3_600_000))],
        )?;
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
