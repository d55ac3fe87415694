//! The re-attestation registry in SQLite: one record per registered kernel (state, pinned
//! attestation key, level, policy, last result, missed challenges), its history, revocations
//! with their KEE-1 P8 completion state, operator commands and the latest metrics snapshot.
//!
//! The in-memory view that drives challenges lives in [`crate::monitor`]; every transition it
//! makes is written here first, so a restarted verifier resumes from the same records.

use crate::store::{ms, unms, Store, StoreError};
use rusqlite::{params, OptionalExtension, Row, Transaction};
use serde::Serialize;
use wire::verifier::AttestationState;

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS registry (
    kernel_id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    reason TEXT NOT NULL,
    since_ms INTEGER NOT NULL,
    held INTEGER NOT NULL DEFAULT 0,
    ak_digest BLOB,
    ak_public BLOB,
    level TEXT,
    policy_id TEXT,
    misses INTEGER NOT NULL DEFAULT 0,
    last_status TEXT,
    last_appraisal_ms INTEGER,
    last_affirming_ms INTEGER,
    revoked_at_ms INTEGER
);
CREATE TABLE IF NOT EXISTS history (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kernel_id TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    event TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS history_kernel ON history (kernel_id, seq);
CREATE INDEX IF NOT EXISTS history_time ON history (at_ms);
CREATE TABLE IF NOT EXISTS revocations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kernel_id TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    cause TEXT NOT NULL,
    reason TEXT NOT NULL,
    completion TEXT NOT NULL,
    targets INTEGER NOT NULL,
    acked INTEGER NOT NULL DEFAULT 0,
    max_propagation_ms INTEGER,
    completed_at_ms INTEGER
);
CREATE INDEX IF NOT EXISTS revocations_kernel ON revocations (kernel_id, id);
CREATE TABLE IF NOT EXISTS operator_commands (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kernel_id TEXT NOT NULL,
    action TEXT NOT NULL,
    reason TEXT NOT NULL,
    requested_at_ms INTEGER NOT NULL,
    applied_at_ms INTEGER,
    outcome TEXT
);
CREATE TABLE IF NOT EXISTS metrics (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    at_ms INTEGER NOT NULL,
    json TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS identity_revocations (
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    reason TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    revocation_id INTEGER,
    PRIMARY KEY (kind, subject)
);
CREATE TABLE IF NOT EXISTS event_logs (
    kernel_id TEXT PRIMARY KEY,
    ak_digest BLOB NOT NULL,
    events INTEGER NOT NULL,
    pcrs TEXT NOT NULL
);
";

/// Completion state of a revocation (KEE-1 P8).
pub mod completion {
    /// Still inside the propagation bound, not every target has acknowledged.
    pub const PENDING: &str = "pending";
    /// Every target kernel acknowledged within the bound.
    pub const CLEAN: &str = "clean";
    /// Some, not all, acknowledged within the bound.
    pub const PARTIAL: &str = "partial";
    /// None acknowledged within the bound, or the verifier restarted before it could tell.
    pub const UNKNOWN: &str = "unknown";
}

/// One kernel's registry record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KernelRecord {
    /// Kernel id.
    pub kernel_id: String,
    /// Ceremony that sealed its share (its FROST signing group).
    pub ceremony_id: String,
    /// Attestation state.
    pub state: AttestationState,
    /// Why it is in that state.
    pub reason: String,
    /// Since when (Unix ms).
    pub since_ms: u64,
    /// Revoked by an operator and held: no recovery until `verifier admit`.
    pub held: bool,
    /// SHA-256 (hex) of the attestation key its wrap key was released to; challenges must be
    /// answered with that key.
    pub ak_digest: Option<String>,
    /// That attestation key (hex, uncompressed P-256 point): it signs the kernel's `watch`
    /// acknowledgements.
    #[serde(skip)]
    pub ak_public: Option<Vec<u8>>,
    /// Level of its latest appraisal.
    pub level: Option<String>,
    /// Policy of its latest appraisal.
    pub policy_id: Option<String>,
    /// Reference-value digest (hex) its share is sealed under.
    pub reference_digest: String,
    /// Consecutive missed challenges.
    pub misses: u32,
    /// Status of its latest appraisal.
    pub last_status: Option<String>,
    /// Time of its latest appraisal (Unix ms).
    pub last_appraisal_ms: Option<u64>,
    /// Time of its latest affirming appraisal (Unix ms).
    pub last_affirming_ms: Option<u64>,
    /// Time of its latest revocation (Unix ms).
    pub revoked_at_ms: Option<u64>,
}

impl KernelRecord {
    /// The pinned attestation-key digest as bytes.
    pub fn ak_digest_bytes(&self) -> Option<[u8; 32]> {
        self.ak_digest
            .as_deref()
            .and_then(|h| hex::decode(h).ok())
            .and_then(|v| <[u8; 32]>::try_from(v.as_slice()).ok())
    }
}

/// One history entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoryEntry {
    /// Unix ms.
    pub at_ms: u64,
    /// `registered`, `attested`, `appraised`, `missed`, `revoked`, `reinstated`, `held`,
    /// `admitted`.
    pub event: String,
    /// Details.
    pub detail: String,
}

/// One logged appraisal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppraisalEntry {
    /// Unix ms.
    pub at_ms: u64,
    /// Overall status.
    pub status: String,
    /// Reasons of the non-affirming claims.
    pub reasons: String,
}

/// What an identity revocation names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentityKind {
    /// A KIA id (KIA-03 §8): a kernel's or an agent's signing identity.
    Kia,
    /// An agent XPID (KIA-03 §6.5).
    Xpid,
}

impl IdentityKind {
    /// `kia` or `xpid`.
    pub fn as_str(&self) -> &'static str {
        match self {
            IdentityKind::Kia => "kia",
            IdentityKind::Xpid => "xpid",
        }
    }
    /// Parses [`IdentityKind::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "kia" => Some(IdentityKind::Kia),
            "xpid" => Some(IdentityKind::Xpid),
            _ => None,
        }
    }
}

/// A revoked KIA id or XPID, with its propagation (KEE-1 P8) once the service tracked it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IdentityRevocation {
    /// KIA id or XPID.
    pub kind: IdentityKind,
    /// The revoked id.
    pub subject: String,
    /// Why.
    pub reason: String,
    /// When revoked (Unix ms).
    pub at_ms: u64,
    /// The `revocations` row tracking its propagation; `None` until the service picked it up.
    pub revocation_id: Option<i64>,
    /// [`completion`] state, once tracked.
    pub completion: Option<String>,
    /// Kernels that had to learn it.
    pub targets: Option<u32>,
    /// How many acknowledged within the bound.
    pub acked: Option<u32>,
    /// Slowest acknowledgement (ms).
    pub max_propagation_ms: Option<u64>,
}

/// One revocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RevocationRecord {
    /// Row id.
    pub id: i64,
    /// Revoked kernel.
    pub kernel_id: String,
    /// Verdict time (Unix ms).
    pub at_ms: u64,
    /// `appraisal`, `missed` or `operator`.
    pub cause: String,
    /// Why.
    pub reason: String,
    /// [`completion`] state.
    pub completion: String,
    /// Kernels that had to learn it (the ceremony's monitored members).
    pub targets: u32,
    /// How many acknowledged within the bound.
    pub acked: u32,
    /// Slowest acknowledgement (ms after the verdict).
    pub max_propagation_ms: Option<u64>,
    /// When the completion state was settled (Unix ms).
    pub completed_at_ms: Option<u64>,
}

/// An operator command, written by the CLI and applied by the running service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OperatorCommand {
    /// Row id.
    pub id: i64,
    /// Target kernel.
    pub kernel_id: String,
    /// `revoke` or `admit`.
    pub action: String,
    /// Operator's reason.
    pub reason: String,
    /// When requested (Unix ms).
    pub requested_at_ms: u64,
    /// When the service applied it (Unix ms).
    pub applied_at_ms: Option<u64>,
    /// What applying it did.
    pub outcome: Option<String>,
}

/// Operator actions.
pub mod action {
    /// Revoke and hold.
    pub const REVOKE: &str = "revoke";
    /// Lift an operator hold (the kernel still needs a fresh affirming result).
    pub const ADMIT: &str = "admit";
}

const RECORD_COLUMNS: &str = "k.kernel_id, k.ceremony_id, r.state, r.reason, r.since_ms, r.held, \
     r.ak_digest, r.level, r.policy_id, k.reference_digest, r.misses, r.last_status, \
     r.last_appraisal_ms, r.last_affirming_ms, r.revoked_at_ms, k.registered_at_ms, r.ak_public";

fn record(row: &Row<'_>) -> rusqlite::Result<KernelRecord> {
    let state: Option<String> = row.get(2)?;
    let opt_ms = |v: Option<i64>| v.map(unms);
    Ok(KernelRecord {
        kernel_id: row.get(0)?,
        ceremony_id: row.get(1)?,
        // A state this build does not know is treated as revoked (fail closed).
        state: state
            .as_deref()
            .map(|s| AttestationState::parse(s).unwrap_or(AttestationState::Revoked))
            .unwrap_or(AttestationState::Registered),
        reason: row
            .get::<_, Option<String>>(3)?
            .unwrap_or_else(|| "registered by a ceremony".into()),
        since_ms: opt_ms(row.get(4)?).unwrap_or_else(|| unms(row.get(15).unwrap_or(0))),
        held: row.get::<_, Option<i64>>(5)?.unwrap_or(0) != 0,
        ak_digest: row.get::<_, Option<Vec<u8>>>(6)?.map(hex::encode),
        ak_public: row.get(16)?,
        level: row.get(7)?,
        policy_id: row.get(8)?,
        reference_digest: hex::encode(row.get::<_, Vec<u8>>(9)?),
        misses: u32::try_from(row.get::<_, Option<i64>>(10)?.unwrap_or(0)).unwrap_or(u32::MAX),
        last_status: row.get(11)?,
        last_appraisal_ms: opt_ms(row.get(12)?),
        last_affirming_ms: opt_ms(row.get(13)?),
        revoked_at_ms: opt_ms(row.get(14)?),
    })
}

fn revocation(row: &Row<'_>) -> rusqlite::Result<RevocationRecord> {
    Ok(RevocationRecord {
        id: row.get(0)?,
        kernel_id: row.get(1)?,
        at_ms: unms(row.get(2)?),
        cause: row.get(3)?,
        reason: row.get(4)?,
        completion: row.get(5)?,
        targets: u32::try_from(row.get::<_, i64>(6)?).unwrap_or(0),
        acked: u32::try_from(row.get::<_, i64>(7)?).unwrap_or(0),
        max_propagation_ms: row.get::<_, Option<i64>>(8)?.map(unms),
        completed_at_ms: row.get::<_, Option<i64>>(9)?.map(unms),
    })
}

fn command(row: &Row<'_>) -> rusqlite::Result<OperatorCommand> {
    Ok(OperatorCommand {
        id: row.get(0)?,
        kernel_id: row.get(1)?,
        action: row.get(2)?,
        reason: row.get(3)?,
        requested_at_ms: unms(row.get(4)?),
        applied_at_ms: row.get::<_, Option<i64>>(5)?.map(unms),
        outcome: row.get(6)?,
    })
}

/// (Re)sets a kernel's record to `registered` inside a registration transaction; an
/// operator hold survives re-registration.
pub(crate) fn reset_registration(
    tx: &Transaction<'_>,
    kernel_id: &str,
    now_ms: u64,
) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO registry (kernel_id, state, reason, since_ms) VALUES (?1, 'registered', 'registered by a ceremony', ?2)
         ON CONFLICT (kernel_id) DO UPDATE SET state = 'registered', reason = 'registered by a ceremony',
             since_ms = ?2, ak_digest = NULL, ak_public = NULL, misses = 0, revoked_at_ms = NULL",
        params![kernel_id, ms(now_ms)],
    )?;
    tx.execute(
        "INSERT INTO history (kernel_id, at_ms, event, detail) VALUES (?1, ?2, 'registered', 'registered by a ceremony')",
        params![kernel_id, ms(now_ms)],
    )?;
    Ok(())
}

fn write_record(tx: &Transaction<'_>, r: &KernelRecord) -> rusqlite::Result<()> {
    let ak: Option<Vec<u8>> = r.ak_digest_bytes().map(|d| d.to_vec());
    tx.execute(
        "INSERT INTO registry (kernel_id, state, reason, since_ms, held, ak_digest, level, policy_id, misses,
             last_status, last_appraisal_ms, last_affirming_ms, revoked_at_ms, ak_public)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
         ON CONFLICT (kernel_id) DO UPDATE SET state = ?2, reason = ?3, since_ms = ?4, held = ?5,
             ak_digest = ?6, level = ?7, policy_id = ?8, misses = ?9, last_status = ?10,
             last_appraisal_ms = ?11, last_affirming_ms = ?12, revoked_at_ms = ?13, ak_public = ?14",
        params![
            r.kernel_id,
            r.state.as_str(),
            r.reason,
            ms(r.since_ms),
            i64::from(r.held),
            ak,
            r.level,
            r.policy_id,
            i64::from(r.misses),
            r.last_status,
            r.last_appraisal_ms.map(ms),
            r.last_affirming_ms.map(ms),
            r.revoked_at_ms.map(ms),
            r.ak_public,
        ],
    )?;
    Ok(())
}

fn write_history(
    tx: &Transaction<'_>,
    kernel_id: &str,
    at_ms: u64,
    event: &str,
    detail: &str,
) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO history (kernel_id, at_ms, event, detail) VALUES (?1, ?2, ?3, ?4)",
        params![kernel_id, ms(at_ms), event, detail],
    )?;
    Ok(())
}

impl Store {
    /// Every registered kernel's record, by id.
    pub fn kernel_records(&self) -> Result<Vec<KernelRecord>, StoreError> {
        let conn = self.lock()?;
        let mut stmt = conn.prepare(&format!(
            "SELECT {RECORD_COLUMNS} FROM kernels k LEFT JOIN registry r ON r.kernel_id = k.kernel_id ORDER BY k.kernel_id"
        ))?;
        let rows = stmt.query_map([], record)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// One kernel's record.
    pub fn kernel_record(&self, kernel_id: &str) -> Result<Option<KernelRecord>, StoreError> {
        let conn = self.lock()?;
        Ok(conn
            .query_row(
                &format!(
                    "SELECT {RECORD_COLUMNS} FROM kernels k LEFT JOIN registry r ON r.kernel_id = k.kernel_id WHERE k.kernel_id = ?1"
                ),
                params![kernel_id],
                record,
            )
            .optional()?)
    }

    /// How many kernels are registered and when the latest registration happened: the monitor
    /// reloads its view when this changes.
    pub fn registration_mark(&self) -> Result<(i64, i64), StoreError> {
        Ok(self.lock()?.query_row(
            "SELECT COUNT(*), COALESCE(MAX(registered_at_ms), 0) FROM kernels",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?)
    }

    /// Writes a record and, if given, a history entry, in one transaction; `durable` for
    /// security-relevant transitions.
    pub fn put_record(
        &self,
        r: &KernelRecord,
        event: Option<(&str, &str)>,
        durable: bool,
    ) -> Result<(), StoreError> {
        let write = |conn: &mut rusqlite::Connection| {
            let tx = conn.transaction()?;
            write_record(&tx, r)?;
            if let Some((ev, detail)) = event {
                write_history(&tx, &r.kernel_id, attestation::now_ms(), ev, detail)?;
            }
            tx.commit()
        };
        if durable {
            self.durable(write)
        } else {
            write(&mut *self.lock()?)?;
            Ok(())
        }
    }

    /// Records a revocation durably (the record, the revocation row and a history entry) and
    /// returns the revocation's id.
    pub fn record_revocation(
        &self,
        r: &KernelRecord,
        cause: &str,
        targets: u32,
    ) -> Result<i64, StoreError> {
        let at = r.revoked_at_ms.unwrap_or_else(attestation::now_ms);
        self.durable(|conn| {
            let tx = conn.transaction()?;
            write_record(&tx, r)?;
            write_history(&tx, &r.kernel_id, at, "revoked", &format!("{cause}: {}", r.reason))?;
            tx.execute(
                "INSERT INTO revocations (kernel_id, at_ms, cause, reason, completion, targets) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![r.kernel_id, ms(at), cause, r.reason, completion::PENDING, i64::from(targets)],
            )?;
            let id = tx.last_insert_rowid();
            tx.commit()?;
            Ok(id)
        })
    }

    /// Settles a revocation's completion state.
    pub fn complete_revocation(
        &self,
        id: i64,
        state: &str,
        acked: u32,
        max_propagation_ms: Option<u64>,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        // Bookkeeping, not a decision: committed with the routine writes.
        self.lock()?.execute(
            "UPDATE revocations SET completion = ?2, acked = ?3, max_propagation_ms = ?4, completed_at_ms = ?5 WHERE id = ?1",
            params![id, state, i64::from(acked), max_propagation_ms.map(ms), ms(now_ms)],
        )?;
        Ok(())
    }

    /// Marks every revocation still pending as `unknown` (a restarted verifier cannot tell
    /// who learned it).
    pub fn settle_pending_revocations(&self, now_ms: u64) -> Result<usize, StoreError> {
        self.durable(|conn| {
            conn.execute(
                "UPDATE revocations SET completion = ?1, completed_at_ms = ?2 WHERE completion = ?3",
                params![completion::UNKNOWN, ms(now_ms), completion::PENDING],
            )
        })
    }

    /// Revokes a KIA id or an agent XPID fleet-wide (durable). Returns `false` when it was
    /// already revoked. The running service pushes it on every kernel's feed within one
    /// sweep and tracks its propagation like a kernel revocation.
    pub fn revoke_identity(
        &self,
        kind: IdentityKind,
        subject: &str,
        reason: &str,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        self.durable(|conn| {
            let n = conn.execute(
                "INSERT OR IGNORE INTO identity_revocations (kind, subject, reason, at_ms) VALUES (?1, ?2, ?3, ?4)",
                params![kind.as_str(), subject, reason, ms(now_ms)],
            )?;
            Ok(n == 1)
        })
    }

    /// How many identities are revoked: the monitor reloads them when this changes.
    pub fn identity_mark(&self) -> Result<i64, StoreError> {
        Ok(self
            .lock()?
            .query_row("SELECT COUNT(*) FROM identity_revocations", [], |r| {
                r.get(0)
            })?)
    }

    /// Every revoked identity, oldest first.
    pub fn identity_revocations(&self) -> Result<Vec<IdentityRevocation>, StoreError> {
        let conn = self.lock()?;
        let mut stmt = conn.prepare(
            "SELECT i.kind, i.subject, i.reason, i.at_ms, i.revocation_id, r.completion, r.targets, r.acked, r.max_propagation_ms
             FROM identity_revocations i LEFT JOIN revocations r ON r.id = i.revocation_id
             ORDER BY i.at_ms, i.subject",
        )?;
        let rows = stmt.query_map([], |r| {
            let kind: String = r.get(0)?;
            Ok(IdentityRevocation {
                // An unknown kind is kept as a KIA revocation: it still denies (fail closed).
                kind: IdentityKind::parse(&kind).unwrap_or(IdentityKind::Kia),
                subject: r.get(1)?,
                reason: r.get(2)?,
                at_ms: unms(r.get(3)?),
                revocation_id: r.get(4)?,
                completion: r.get(5)?,
                targets: r
                    .get::<_, Option<i64>>(6)?
                    .and_then(|v| u32::try_from(v).ok()),
                acked: r
                    .get::<_, Option<i64>>(7)?
                    .and_then(|v| u32::try_from(v).ok()),
                max_propagation_ms: r.get::<_, Option<i64>>(8)?.map(unms),
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Starts tracking an identity revocation's propagation: a `revocations` row (subject
    /// `kia:ID` / `xpid:UUID`, cause `identity`) linked from the identity row.
    pub fn track_identity_revocation(
        &self,
        kind: IdentityKind,
        subject: &str,
        reason: &str,
        at_ms: u64,
        targets: u32,
    ) -> Result<i64, StoreError> {
        self.durable(|conn| {
            let tx = conn.transaction()?;
            tx.execute(
                "INSERT INTO revocations (kernel_id, at_ms, cause, reason, completion, targets) VALUES (?1, ?2, 'identity', ?3, ?4, ?5)",
                params![format!("{}:{subject}", kind.as_str()), ms(at_ms), reason, completion::PENDING, i64::from(targets)],
            )?;
            let id = tx.last_insert_rowid();
            tx.execute(
                "UPDATE identity_revocations SET revocation_id = ?3 WHERE kind = ?1 AND subject = ?2",
                params![kind.as_str(), subject, id],
            )?;
            tx.commit()?;
            Ok(id)
        })
    }

    /// Latest revocations of every kind, newest first.
    pub fn all_revocations(&self, limit: u32) -> Result<Vec<RevocationRecord>, StoreError> {
        let conn = self.lock()?;
        let mut stmt = conn.prepare(
            "SELECT id, kernel_id, at_ms, cause, reason, completion, targets, acked, max_propagation_ms, completed_at_ms
             FROM revocations ORDER BY id DESC LIMIT ?1",
        )?;
        let rows = stmt.query_map(params![i64::from(limit)], revocation)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Latest revocations of a kernel, newest first.
    pub fn revocations_of(
        &self,
        kernel_id: &str,
        limit: u32,
    ) -> Result<Vec<RevocationRecord>, StoreError> {
        let conn = self.lock()?;
        let mut stmt = conn.prepare(
            "SELECT id, kernel_id, at_ms, cause, reason, completion, targets, acked, max_propagation_ms, completed_at_ms
             FROM revocations WHERE kernel_id = ?1 ORDER BY id DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![kernel_id, i64::from(limit)], revocation)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Latest history entries of a kernel, newest first.
    pub fn history_of(&self, kernel_id: &str, limit: u32) -> Result<Vec<HistoryEntry>, StoreError> {
        let conn = self.lock()?;
        let mut stmt = conn.prepare(
            "SELECT at_ms, event, detail FROM history WHERE kernel_id = ?1 ORDER BY seq DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![kernel_id, i64::from(limit)], |r| {
            Ok(HistoryEntry {
                at_ms: unms(r.get(0)?),
                event: r.get(1)?,
                detail: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Latest logged appraisals of a kernel, newest first.
    pub fn appraisals_of(
        &self,
        kernel_id: &str,
        limit: u32,
    ) -> Result<Vec<AppraisalEntry>, StoreError> {
        let conn = self.lock()?;
        let mut stmt = conn.prepare(
            "SELECT at_ms, status, reasons FROM appraisals WHERE kernel_id = ?1 ORDER BY seq DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![kernel_id, i64::from(limit)], |r| {
            Ok(AppraisalEntry {
                at_ms: unms(r.get(0)?),
                status: r.get(1)?,
                reasons: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Deletes history entries older than `before_ms`.
    pub fn purge_history(&self, before_ms: u64) -> Result<(), StoreError> {
        self.lock()?.execute(
            "DELETE FROM history WHERE at_ms < ?1",
            params![ms(before_ms)],
        )?;
        Ok(())
    }

    /// Queues an operator command durably; the running service applies it.
    pub fn request_operator(
        &self,
        kernel_id: &str,
        action: &str,
        reason: &str,
        now_ms: u64,
    ) -> Result<i64, StoreError> {
        self.durable(|conn| {
            conn.execute(
                "INSERT INTO operator_commands (kernel_id, action, reason, requested_at_ms) VALUES (?1, ?2, ?3, ?4)",
                params![kernel_id, action, reason, ms(now_ms)],
            )?;
            Ok(conn.last_insert_rowid())
        })
    }

    /// Operator commands not yet applied, oldest first.
    pub fn pending_operator_commands(&self) -> Result<Vec<OperatorCommand>, StoreError> {
        let conn = self.lock()?;
        let mut stmt = conn.prepare(
            "SELECT id, kernel_id, action, reason, requested_at_ms, applied_at_ms, outcome
             FROM operator_commands WHERE applied_at_ms IS NULL ORDER BY id",
        )?;
        let rows = stmt.query_map([], command)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// One operator command.
    pub fn operator_command(&self, id: i64) -> Result<Option<OperatorCommand>, StoreError> {
        Ok(self
            .lock()?
            .query_row(
                "SELECT id, kernel_id, action, reason, requested_at_ms, applied_at_ms, outcome
                 FROM operator_commands WHERE id = ?1",
                params![id],
                command,
            )
            .optional()?)
    }

    /// Marks an operator command applied.
    pub fn mark_operator_command(
        &self,
        id: i64,
        now_ms: u64,
        outcome: &str,
    ) -> Result<(), StoreError> {
        self.durable(|conn| {
            conn.execute(
                "UPDATE operator_commands SET applied_at_ms = ?2, outcome = ?3 WHERE id = ?1",
                params![id, ms(now_ms), outcome],
            )
        })?;
        Ok(())
    }

    /// Replaces the metrics snapshot.
    pub fn put_metrics(&self, now_ms: u64, json: &str) -> Result<(), StoreError> {
        self.lock()?.execute(
            "INSERT OR REPLACE INTO metrics (id, at_ms, json) VALUES (1, ?1, ?2)",
            params![ms(now_ms), json],
        )?;
        Ok(())
    }

    /// The latest metrics snapshot: (written at, JSON).
    pub fn metrics(&self) -> Result<Option<(u64, String)>, StoreError> {
        Ok(self
            .lock()?
            .query_row("SELECT at_ms, json FROM metrics WHERE id = 1", [], |r| {
                Ok((unms(r.get(0)?), r.get(1)?))
            })
            .optional()?)
    }
}

/// The event-log replay of a kernel's current boot (its attestation key): what the next
/// challenge's log part must continue.
impl Store {
    /// The replay held for `kernel_id` under the attestation key with SHA-256 `ak_digest`;
    /// `None` when none is held or it belongs to another boot.
    pub fn event_log_state(
        &self,
        kernel_id: &str,
        ak_digest: &[u8],
    ) -> Result<Option<attestation::appraisal::EventLogState>, StoreError> {
        let row: Option<(Vec<u8>, i64, String)> = self
            .lock()?
            .query_row(
                "SELECT ak_digest, events, pcrs FROM event_logs WHERE kernel_id = ?1",
                params![kernel_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let Some((digest, events, pcrs)) = row else {
            return Ok(None);
        };
        if digest != ak_digest {
            return Ok(None);
        }
        let pcrs: std::collections::BTreeMap<u32, String> = serde_json::from_str(&pcrs)
            .map_err(|e| StoreError::Corrupt(format!("event log state of `{kernel_id}`: {e}")))?;
        let pcrs = pcrs
            .into_iter()
            .map(|(i, v)| hex::decode(v).map(|v| (i, v)))
            .collect::<Result<_, _>>()
            .map_err(|e| StoreError::Corrupt(format!("event log state of `{kernel_id}`: {e}")))?;
        Ok(Some(attestation::appraisal::EventLogState {
            events: u32::try_from(events).unwrap_or(0),
            pcrs,
        }))
    }

    /// Keeps the replay after an affirming appraisal (replacing any earlier boot's).
    pub fn put_event_log_state(
        &self,
        kernel_id: &str,
        ak_digest: &[u8],
        state: &attestation::appraisal::EventLogState,
    ) -> Result<(), StoreError> {
        let pcrs: std::collections::BTreeMap<u32, String> = state
            .pcrs
            .iter()
            .map(|(i, v)| (*i, hex::encode(v)))
            .collect();
        let pcrs = serde_json::to_string(&pcrs)
            .map_err(|e| StoreError::Corrupt(format!("event log state: {e}")))?;
        self.lock()?.execute(
            "INSERT INTO event_logs (kernel_id, ak_digest, events, pcrs) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(kernel_id) DO UPDATE SET ak_digest = ?2, events = ?3, pcrs = ?4",
            params![kernel_id, ak_digest, i64::from(state.events), pcrs],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("v.db")).unwrap();
        s.register_kernel("k1", "c1", &[1; 32], &[2; 32], &[3; 32], 1000)
            .unwrap();
        s.register_kernel("k2", "c1", &[1; 32], &[2; 32], &[3; 32], 1000)
            .unwrap();
        (dir, s)
    }

    #[test]
    fn records_start_registered_and_survive_reopening() {
        let (dir, s) = store();
        let mut r = s.kernel_record("k1").unwrap().unwrap();
        assert_eq!(r.state, AttestationState::Registered);
        assert_eq!(r.ceremony_id, "c1");
        assert!(r.ak_digest.is_none());
        r.state = AttestationState::Attested;
        r.ak_digest = Some(hex::encode([9u8; 32]));
        r.ak_public = Some(vec![4; 65]);
        r.misses = 2;
        s.put_record(&r, Some(("attested", "released")), true)
            .unwrap();
        r.state = AttestationState::Revoked;
        r.reason = "pcr 7 changed".into();
        r.revoked_at_ms = Some(5000);
        let id = s.record_revocation(&r, "appraisal", 2).unwrap();
        drop(s);
        let s = Store::open(&dir.path().join("v.db")).unwrap();
        let back = s.kernel_record("k1").unwrap().unwrap();
        assert_eq!(back, r);
        assert_eq!(back.ak_digest_bytes(), Some([9u8; 32]));
        let revs = s.revocations_of("k1", 10).unwrap();
        assert_eq!(revs.len(), 1);
        assert_eq!(revs[0].id, id);
        assert_eq!(revs[0].completion, completion::PENDING);
        assert_eq!(s.settle_pending_revocations(6000).unwrap(), 1);
        assert_eq!(
            s.revocations_of("k1", 10).unwrap()[0].completion,
            completion::UNKNOWN
        );
        let h = s.history_of("k1", 10).unwrap();
        assert_eq!(h[0].event, "revoked");
        assert_eq!(h.last().unwrap().event, "registered");
        assert_eq!(s.kernel_records().unwrap().len(), 2);
    }

    #[test]
    fn re_registration_resets_the_record_but_keeps_a_hold() {
        let (_dir, s) = store();
        let mut r = s.kernel_record("k2").unwrap().unwrap();
        r.state = AttestationState::Revoked;
        r.held = true;
        r.ak_digest = Some(hex::encode([1u8; 32]));
        s.put_record(&r, None, true).unwrap();
        s.register_kernel("k2", "c2", &[1; 32], &[2; 32], &[3; 32], 2000)
            .unwrap();
        let back = s.kernel_record("k2").unwrap().unwrap();
        assert_eq!(back.state, AttestationState::Registered);
        assert_eq!(back.ceremony_id, "c2");
        assert!(back.held);
        assert!(back.ak_digest.is_none());
    }

    #[test]
    fn operator_commands_queue_and_apply() {
        let (_dir, s) = store();
        let id = s
            .request_operator("k1", action::REVOKE, "suspected compromise", 10)
            .unwrap();
        let pending = s.pending_operator_commands().unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].action, action::REVOKE);
        s.mark_operator_command(id, 20, "revoked").unwrap();
        assert!(s.pending_operator_commands().unwrap().is_empty());
        let c = s.operator_command(id).unwrap().unwrap();
        assert_eq!(c.applied_at_ms, Some(20));
        assert_eq!(c.outcome.as_deref(), Some("revoked"));
        s.put_metrics(5, "{\"a\":1}").unwrap();
        assert_eq!(s.metrics().unwrap(), Some((5, "{\"a\":1}".to_string())));
    }
}
