//! The operator's view of re-attestation, read straight from the verifier's database (WAL
//! mode lets the CLI read while the service writes): `verifier kernels`, `verifier status ID`,
//! `verifier revoke ID`, `verifier admit ID`, `verifier metrics`.
//!
//! `revoke` and `admit` queue a durable command that the running service applies within one
//! sweep (`--sweep-ms`, 1 s by default) and pushes on the feed; with no service running it is
//! applied when the service next starts.

use crate::monitor::metrics::MetricsSnapshot;
use crate::registry::{
    action, completion, AppraisalEntry, HistoryEntry, IdentityKind, IdentityRevocation,
    KernelRecord, OperatorCommand, RevocationRecord,
};
use crate::store::{Store, StoreError};
use serde::Serialize;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// Errors of operator commands.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// "kernel `{0}` is not registered (run a ceremony that names it)".
    #[error("kernel `{0}` is not registered (run a ceremony that names it)")]
    NotRegistered(String),
    /// "`{0}` is not a revocable identity (a KIA id of 1-256 bytes, or an XPID UUID)".
    #[error("`{0}` is not a revocable identity (a KIA id of 1-256 bytes, or an XPID UUID)")]
    BadIdentity(String),
    /// The database could not be read or written.
    #[error("verifier database")]
    Store(#[from] StoreError),
    /// "the metrics snapshot is not valid json".
    #[error("the metrics snapshot is not valid json")]
    Metrics(#[source] serde_json::Error),
}

/// `verifier status ID`.
#[derive(Debug, Clone, Serialize)]
pub struct StatusView {
    /// The registry record.
    pub kernel: KernelRecord,
    /// Latest history entries, newest first.
    pub history: Vec<HistoryEntry>,
    /// Latest appraisals, newest first.
    pub appraisals: Vec<AppraisalEntry>,
    /// Latest revocations with their KEE-1 P8 completion state, newest first.
    pub revocations: Vec<RevocationRecord>,
}

/// Every kernel's record.
pub fn kernels(store: &Store) -> Result<Vec<KernelRecord>, OpsError> {
    Ok(store.kernel_records()?)
}

/// One kernel's record, history, appraisals and revocations (`limit` entries each).
pub fn status(store: &Store, kernel_id: &str, limit: u32) -> Result<StatusView, OpsError> {
    let kernel = store
        .kernel_record(kernel_id)?
        .ok_or_else(|| OpsError::NotRegistered(kernel_id.to_string()))?;
    Ok(StatusView {
        kernel,
        history: store.history_of(kernel_id, limit)?,
        appraisals: store.appraisals_of(kernel_id, limit)?,
        revocations: store.revocations_of(kernel_id, limit)?,
    })
}

/// Queues `revoke` or `admit` for a registered kernel.
pub fn request(
    store: &Store,
    kernel_id: &str,
    what: &str,
    reason: &str,
) -> Result<OperatorCommand, OpsError> {
    if store.kernel_record(kernel_id)?.is_none() {
        return Err(OpsError::NotRegistered(kernel_id.to_string()));
    }
    let id = store.request_operator(kernel_id, what, reason, attestation::now_ms())?;
    store
        .operator_command(id)?
        .ok_or_else(|| OpsError::NotRegistered(kernel_id.to_string()))
}

/// Queues a revocation.
pub fn revoke(store: &Store, kernel_id: &str, reason: &str) -> Result<OperatorCommand, OpsError> {
    request(store, kernel_id, action::REVOKE, reason)
}

/// `verifier revocations`.
#[derive(Debug, Clone, Serialize)]
pub struct RevocationsView {
    /// Latest revocations of every kind, newest first.
    pub revocations: Vec<RevocationRecord>,
    /// Every revoked KIA id and XPID.
    pub identities: Vec<IdentityRevocation>,
}

/// Revokes a KIA id or XPID (durably) and waits up to `wait` for the running service to
/// settle its propagation; returns the revocation as it stands then. Revoking an id twice
/// keeps the first revocation.
pub fn revoke_identity(
    store: &Store,
    kind: IdentityKind,
    subject: &str,
    reason: &str,
    wait: Duration,
) -> Result<IdentityRevocation, OpsError> {
    if subject.is_empty() || subject.len() > 256 {
        return Err(OpsError::BadIdentity(subject.to_string()));
    }
    if kind == IdentityKind::Xpid && uuid::Uuid::parse_str(subject).is_err() {
        return Err(OpsError::BadIdentity(subject.to_string()));
    }
    store.revoke_identity(kind, subject, reason, attestation::now_ms())?;
    let deadline = Instant::now() + wait;
    loop {
        let found = store
            .identity_revocations()?
            .into_iter()
            .find(|r| r.kind == kind && r.subject == subject)
            .ok_or_else(|| OpsError::BadIdentity(subject.to_string()))?;
        let settled = found
            .completion
            .as_deref()
            .is_some_and(|c| c != completion::PENDING);
        if settled || Instant::now() >= deadline {
            return Ok(found);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every revocation and revoked identity.
pub fn revocations(store: &Store, limit: u32) -> Result<RevocationsView, OpsError> {
    Ok(RevocationsView {
        revocations: store.all_revocations(limit)?,
        identities: store.identity_revocations()?,
    })
}

/// `verifier revocations` as a table.
pub fn render_revocations(v: &RevocationsView) -> String {
    let mut out = format!(
        "{:<5} {:<40} {:<9} {:<8} {:>7} {:>6} {:>9}  {}\n",
        "ID", "SUBJECT", "CAUSE", "STATE", "TARGETS", "ACKED", "MAX MS", "REASON"
    );
    for r in &v.revocations {
        let _ = writeln!(
            out,
            "{:<5} {:<40} {:<9} {:<8} {:>7} {:>6} {:>9}  {}",
            r.id,
            r.kernel_id,
            r.cause,
            r.completion,
            r.targets,
            r.acked,
            when(r.max_propagation_ms),
            r.reason
        );
    }
    out
}

/// Waits up to `timeout` for the running service to apply a command; returns it as it
/// stands then.
pub fn wait_applied(
    store: &Store,
    command_id: i64,
    timeout: Duration,
) -> Result<Option<OperatorCommand>, OpsError> {
    let deadline = Instant::now() + timeout;
    loop {
        let c = store.operator_command(command_id)?;
        if c.as_ref().is_none_or(|c| c.applied_at_ms.is_some()) || Instant::now() >= deadline {
            return Ok(c);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The latest metrics snapshot the service wrote.
pub fn metrics(store: &Store) -> Result<Option<MetricsSnapshot>, OpsError> {
    match store.metrics()? {
        Some((_, json)) => serde_json::from_str(&json)
            .map(Some)
            .map_err(OpsError::Metrics),
        None => Ok(None),
    }
}

fn when(ms: Option<u64>) -> String {
    ms.map_or_else(|| "-".to_string(), |m| m.to_string())
}

/// `verifier kernels` as a table.
pub fn render_kernels(records: &[KernelRecord]) -> String {
    let mut out = format!(
        "{:<16} {:<10} {:<5} {:<8} {:<15} {:<15} {:>6}  {}\n",
        "KERNEL", "STATE", "HELD", "LEVEL", "LAST STATUS", "LAST APPRAISAL", "MISSES", "REASON"
    );
    for r in records {
        let _ = writeln!(
            out,
            "{:<16} {:<10} {:<5} {:<8} {:<15} {:<15} {:>6}  {}",
            r.kernel_id,
            r.state.as_str(),
            if r.held { "yes" } else { "no" },
            r.level.as_deref().unwrap_or("-"),
            r.last_status.as_deref().unwrap_or("-"),
            when(r.last_appraisal_ms),
            r.misses,
            r.reason
        );
    }
    out
}

/// `verifier status ID` as text.
pub fn render_status(v: &StatusView) -> String {
    let k = &v.kernel;
    let mut out = String::new();
    let _ = writeln!(out, "kernel:            {}", k.kernel_id);
    let _ = writeln!(out, "ceremony:          {}", k.ceremony_id);
    let _ = writeln!(
        out,
        "state:             {} since {} ({})",
        k.state.as_str(),
        k.since_ms,
        k.reason
    );
    let _ = writeln!(
        out,
        "held by operator:  {}",
        if k.held { "yes" } else { "no" }
    );
    let _ = writeln!(
        out,
        "attestation key:   {}",
        k.ak_digest.as_deref().unwrap_or("- (no wrap key released)")
    );
    let _ = writeln!(
        out,
        "level / policy:    {} / {}",
        k.level.as_deref().unwrap_or("-"),
        k.policy_id.as_deref().unwrap_or("-")
    );
    let _ = writeln!(out, "reference digest:  {}", k.reference_digest);
    let _ = writeln!(
        out,
        "last appraisal:    {} at {} (last affirming {})",
        k.last_status.as_deref().unwrap_or("-"),
        when(k.last_appraisal_ms),
        when(k.last_affirming_ms)
    );
    let _ = writeln!(out, "missed challenges: {}", k.misses);
    let _ = writeln!(out, "revocations:");
    for r in &v.revocations {
        let _ = writeln!(
            out,
            "  #{} at {} {} [{}: {}/{} acknowledged, slowest {} ms] {}",
            r.id,
            r.at_ms,
            r.cause,
            r.completion,
            r.acked,
            r.targets,
            when(r.max_propagation_ms),
            r.reason
        );
    }
    let _ = writeln!(out, "history:");
    for h in &v.history {
        let _ = writeln!(out, "  {} {:<10} {}", h.at_ms, h.event, h.detail);
    }
    let _ = writeln!(out, "appraisals:");
    for a in &v.appraisals {
        let _ = writeln!(out, "  {} {:<15} {}", a.at_ms, a.status, a.reasons);
    }
    out
}
