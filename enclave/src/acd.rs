//! KEE-1 P3: the ACD four-check sequence. Before this kernel issues an ACD Record to a
//! resource provider it checks, freshly and in order:
//!
//! 1. `manifest_current`: the GEC manifest's hash lock holds, and the latest affirming
//!    attestation result about this kernel (the boot result or a re-attestation answer) verifies
//!    under the pinned verifier key, names this kernel and its attestation key, has not
//!    expired and is younger than [`MAX_RESULT_AGE_MS`];
//! 2. `cedar_policy_hash`: SHA-256 recomputed over the live Cedar policy set equals the hash
//!    the kernel committed to: the manifest's `cap_profile_hash`, or the hash of the catalog
//!    update activated since under the publishers the manifest pins (P4);
//! 3. `kia_not_revoked`: the revocation feed is current (KEE-1 P8: a status within the feed
//!    timeout, itself below 30 s), the verifier has not revoked this kernel, and neither the
//!    kernel's KIA id nor the agent's is on the feed's revoked-KIA list;
//! 4. `xpid_not_revoked`: the agent XPID is a UUID, the feed is current, and the XPID is not on
//!    its revoked list.
//!
//! All four always run, so a refusal names every failed check. Any failure = no record, a
//! `Refused` error naming the checks, and a `soos.governance.acd.refused` ALE. A record is
//! returned only after its `soos.governance.acd.issued` ALE is durable.

use crate::kernel::{events, Kernel};
use crate::reattest::RevocationView;
use serde::Serialize;
use std::sync::Arc;
use wire::msg::{
    AcdCheck, AcdInfo, AcdIssueParams, AcdRecord, ErrorCode, Response, ACD_NONCE_BYTES,
    ACD_SIGNATURE_CONTEXT,
};

/// A record is not to be relied on after this long.
pub const ACD_RECORD_TTL_MS: u64 = 5 * 60_000;
/// Check 1 fails when the latest affirming attestation result is older than this.
pub const MAX_RESULT_AGE_MS: u64 = 15 * 60_000;
/// Longest resource-provider or agent KIA id accepted.
pub const MAX_ID_BYTES: usize = 256;

#[derive(Serialize)]
struct Refusal<'a> {
    agent_xpid: &'a str,
    agent_kia_id: &'a str,
    resource_provider: &'a str,
    checks: &'a [AcdCheck],
}

#[derive(Serialize)]
struct Issued<'a> {
    acd_session_id: &'a str,
    agent_xpid: &'a str,
    resource_provider: &'a str,
    #[serde(with = "serde_bytes")]
    record_hash: Vec<u8>,
    cedar_policy_hash: &'a str,
    catalog_version: u64,
}

fn check(name: &str, result: Result<String, String>) -> AcdCheck {
    match result {
        Ok(detail) => AcdCheck {
            check: name.into(),
            passed: true,
            detail,
        },
        Err(detail) => AcdCheck {
            check: name.into(),
            passed: false,
            detail,
        },
    }
}

fn bad_request(p: &AcdIssueParams) -> Option<String> {
    if !ACD_NONCE_BYTES.contains(&p.nonce.len()) {
        return Some(format!(
            "nonce is {} bytes; give {} to {}",
            p.nonce.len(),
            ACD_NONCE_BYTES.start(),
            ACD_NONCE_BYTES.end()
        ));
    }
    if p.resource_provider.is_empty() || p.resource_provider.len() > MAX_ID_BYTES {
        return Some(format!(
            "resource_provider must be 1 to {MAX_ID_BYTES} bytes"
        ));
    }
    if p.agent_kia_id.len() > MAX_ID_BYTES || p.agent_xpid.len() > MAX_ID_BYTES {
        return Some(format!("ids are at most {MAX_ID_BYTES} bytes"));
    }
    None
}

/// Runs the four checks and issues a signed record, or refuses.
pub async fn issue(k: &Arc<Kernel>, p: &AcdIssueParams) -> Response {
    let session = if p.session_id.is_empty() {
        "acd"
    } else {
        p.session_id.as_str()
    };
    if let Some(why) = bad_request(p) {
        k.audit_event(events::ACD_REFUSED, session, &("bad_request", &why))
            .await;
        return Response::error(ErrorCode::BadRequest, format!("acd_issue: {why}"));
    }
    let now = attestation::now_ms();
    let Some(u) = k.unsealed() else {
        return Response::error(ErrorCode::NotServing, "kernel is not unsealed");
    };
    let manifest = match u.read() {
        Ok(g) => g.manifest.access().map(|(m, _, h)| (m, h)),
        Err(_) => Err(attestation::manifest::ManifestError::Corrupt),
    };
    let credential = k.peer_credential();

    // 1. manifest_current
    let c1 = match &manifest {
        Err(e) => Err(format!("manifest hash lock: {e}")),
        Ok((m, hash)) => manifest_current(k, m, hash, credential.as_deref(), now),
    };
    // 2. cedar_policy_hash
    let (committed_version, committed_hash) = k.committed_policy();
    let live = k.engine.live_policy_hash();
    let manifest_cap = manifest
        .as_ref()
        .map(|(m, _)| m.cap_profile_hash.clone())
        .unwrap_or_default();
    let c2 = match live {
        None => Err("no Cedar policy set is loaded".to_string()),
        Some(h) if h != committed_hash => Err(format!(
            "live policy set hashes to {}, the kernel committed to {}",
            hex::encode(h),
            hex::encode(committed_hash)
        )),
        Some(h) if committed_version == 0 && hex::encode(h) != manifest_cap => Err(format!(
            "live policy set hashes to {}, the manifest says {manifest_cap}",
            hex::encode(h)
        )),
        Some(h) => Ok(format!(
            "{} (catalog version {committed_version})",
            hex::encode(h)
        )),
    };
    // 3. kia_not_revoked, 4. xpid_not_revoked
    let view = k.revocation_view();
    let kia = k.kia_id().to_string();
    let c3 = match &view {
        RevocationView::Unknown(why) => Err(format!("revocation status unknown: {why}")),
        RevocationView::Clean => {
            if k.self_revoked() {
                Err(format!("kernel `{kia}` is revoked by the verifier"))
            } else if k.kia_revoked(&kia) {
                Err(format!("KIA id `{kia}` is revoked"))
            } else if !p.agent_kia_id.is_empty() && k.kia_revoked(&p.agent_kia_id) {
                Err(format!("agent KIA id `{}` is revoked", p.agent_kia_id))
            } else {
                Ok(format!("`{kia}` not revoked (feed current)"))
            }
        }
    };
    let xpid = uuid::Uuid::parse_str(&p.agent_xpid).map(|u| u.to_string());
    let c4 = match (&view, &xpid) {
        (_, Err(_)) => Err(format!("`{}` is not an XPID (a UUID)", p.agent_xpid)),
        (RevocationView::Unknown(why), _) => Err(format!("revocation status unknown: {why}")),
        (RevocationView::Clean, Ok(x)) if k.xpid_revoked(x) => {
            Err(format!("XPID `{x}` is revoked"))
        }
        (RevocationView::Clean, Ok(x)) => Ok(format!("`{x}` not revoked (feed current)")),
    };
    let checks = vec![
        check("manifest_current", c1),
        check("cedar_policy_hash", c2),
        check("kia_not_revoked", c3),
        check("xpid_not_revoked", c4),
    ];
    let failed: Vec<String> = checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| format!("`{}`: {}", c.check, c.detail))
        .collect();
    let mut span = k.otel.span(crate::otel::names::ACD_CHECK, session);
    span.set_attr("soos.acd.agent_xpid", p.agent_xpid.clone());
    span.set_attr("soos.acd.resource_provider", p.resource_provider.clone());
    for c in &checks {
        span.set_attr(
            match c.check.as_str() {
                "manifest_current" => "soos.acd.manifest_current",
                "cedar_policy_hash" => "soos.acd.cedar_policy_hash",
                "kia_not_revoked" => "soos.acd.kia_not_revoked",
                _ => "soos.acd.xpid_not_revoked",
            },
            c.passed,
        );
    }
    if !failed.is_empty() {
        span.fail(failed.join("; "));
    }
    let (Ok((m, manifest_hash)), Some(result), Ok(xpid), Some(live), true) =
        (manifest, credential, xpid, live, failed.is_empty())
    else {
        let refusal = Refusal {
            agent_xpid: &p.agent_xpid,
            agent_kia_id: &p.agent_kia_id,
            resource_provider: &p.resource_provider,
            checks: &checks,
        };
        k.audit_event(events::ACD_REFUSED, session, &refusal).await;
        tracing::warn!(kernel = %k.kernel_id(), failed = %failed.join("; "), "acd refused");
        return Response::error(
            ErrorCode::Refused,
            format!("acd four-check failed: {}", failed.join("; ")),
        );
    };
    let record = AcdRecord {
        version: 1,
        acd_session_id: uuid::Uuid::new_v4().to_string(),
        kernel_id: k.kernel_id().to_string(),
        kia_id: kia,
        fleet_id: m.fleet_id.clone(),
        conformance_level: m.conformance_level.clone(),
        agent_xpid: xpid,
        agent_kia_id: p.agent_kia_id.clone(),
        resource_provider: p.resource_provider.clone(),
        nonce: p.nonce.clone(),
        manifest_hash: hex::encode(manifest_hash),
        cedar_policy_hash: hex::encode(live),
        manifest_cap_profile_hash: m.cap_profile_hash.clone(),
        catalog_version: committed_version,
        attestation_result_digest: hex::encode(attestation::sha256(&result)),
        checks,
        issued_at_ms: now,
        expires_at_ms: now.saturating_add(ACD_RECORD_TTL_MS),
    };
    let Ok(bytes) = wire::encode(&record) else {
        return Response::error(ErrorCode::Internal, "acd record does not encode");
    };
    let mut msg = ACD_SIGNATURE_CONTEXT.to_vec();
    msg.extend_from_slice(&bytes);
    let Ok(signature) = k.ak.sign(&msg) else {
        return Response::error(ErrorCode::Internal, "attestation key could not sign");
    };
    let issued = Issued {
        acd_session_id: &record.acd_session_id,
        agent_xpid: &record.agent_xpid,
        resource_provider: &record.resource_provider,
        record_hash: attestation::sha256(&bytes).to_vec(),
        cedar_policy_hash: &record.cedar_policy_hash,
        catalog_version: committed_version,
    };
    let Some(ale_seq) = k.audit_seq(events::ACD_ISSUED, session, &issued).await else {
        // No durable audit record, no ACD record: fail closed.
        return Response::error(
            ErrorCode::Internal,
            "audit log unavailable; acd record not issued",
        );
    };
    Response::Acd(Box::new(AcdInfo {
        record: bytes,
        signature,
        ak_public: k.ak.public_key().to_vec(),
        result,
        ale_seq,
    }))
}

fn manifest_current(
    k: &Kernel,
    m: &attestation::manifest::GecManifest,
    hash: &[u8; 32],
    credential: Option<&[u8]>,
    now: u64,
) -> Result<String, String> {
    let cred = credential.ok_or("no affirming attestation result yet")?;
    let r = attestation::result::verify_result(cred, &k.cfg.verifier_public_key)
        .map_err(|e| format!("attestation result: {e}"))?;
    if r.kernel_id != m.kernel_id || m.kernel_id != k.kernel_id() {
        return Err(format!(
            "result names `{}`, manifest `{}`",
            r.kernel_id, m.kernel_id
        ));
    }
    if r.ak_public_digest != attestation::sha256(k.ak.public_key()) {
        return Err("result names another attestation key".into());
    }
    if !r.is_affirming_at(now) {
        return Err("latest attestation result is not affirming or has expired".into());
    }
    let age = now.saturating_sub(r.issued_at_ms);
    if age > MAX_RESULT_AGE_MS {
        return Err(format!(
            "latest affirming attestation is {age} ms old (limit {MAX_RESULT_AGE_MS} ms)"
        ));
    }
    Ok(format!(
        "hash lock {} holds; attested {age} ms ago",
        hex::encode(hash)
    ))
}
