//! Offline verification, as a resource provider or auditor does it with nothing but the
//! kernel's published `manifest` answer, the verifier's public key and (optionally) the policy:
//!
//! 1. the manifest's hash lock holds;
//! 2. the evidence bundle's AK signature verifies, and its digest is the one the manifest names;
//! 3. the manifest, with its evidence fields blanked, is the draft the bundle was bound to;
//! 4. the attestation result's signature verifies under the verifier key, it names this bundle,
//!    kernel and nonce, and it is affirming;
//! 5. with a policy: the evidence is re-appraised (at the bundle's creation time) and must be
//!    affirming again.

use attestation::appraisal::{appraise, AppraisalContext, AppraisalPolicy};
use attestation::bundle::UnverifiedBundle;
use attestation::manifest::GecManifest;
use attestation::result::{verify_result, Tier};
use serde::Serialize;

/// One named check and its outcome.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Check {
    /// Check name.
    pub check: String,
    /// Passed?
    pub ok: bool,
    /// Detail or failure reason.
    pub detail: String,
}

/// The report of an offline verification.
#[derive(Debug, Clone, Serialize)]
pub struct OfflineReport {
    /// Kernel id from the manifest ("" if it did not decode).
    pub kernel_id: String,
    /// Level from the manifest.
    pub level: String,
    /// Every check in order.
    pub checks: Vec<Check>,
    /// True when every check passed.
    pub verified: bool,
}

fn push(checks: &mut Vec<Check>, name: &str, r: Result<String, String>) -> bool {
    let ok = r.is_ok();
    checks.push(Check {
        check: name.into(),
        ok,
        detail: r.unwrap_or_else(|e| e),
    });
    ok
}

/// Verifies a kernel's manifest answer offline.
pub fn verify_manifest(
    manifest: &[u8],
    manifest_hash: &[u8],
    bundle: &[u8],
    result: &[u8],
    verifier_public_key: &[u8],
    policy: Option<&AppraisalPolicy>,
) -> OfflineReport {
    let mut checks = Vec::new();
    let mut kernel_id = String::new();
    let mut level = String::new();
    let m: Option<GecManifest> = wire::decode(manifest).ok();
    let lock = if attestation::sha256(manifest).as_slice() != manifest_hash {
        Err("sha256(manifest) differs from the manifest hash".to_string())
    } else if m.is_none() {
        Err("manifest does not decode".to_string())
    } else {
        Ok("sha256 over the canonical cbor matches".to_string())
    };
    push(&mut checks, "manifest.hash_lock", lock);
    if let Some(m) = &m {
        kernel_id = m.kernel_id.clone();
        level = m.conformance_level.clone();
    }
    let vb = UnverifiedBundle::parse(bundle).and_then(|b| b.verify_signature());
    let bundle_ok = push(
        &mut checks,
        "bundle.signature",
        vb.as_ref()
            .map(|b| format!("cose_sign1 es256 by ak, {} evidence items", b.items().len()))
            .map_err(|e| e.to_string()),
    );
    let digest = hex::encode(attestation::sha256(bundle));
    push(
        &mut checks,
        "manifest.names_bundle",
        match &m {
            Some(m) if m.evidence_bundle_digest == digest => Ok(digest.clone()),
            Some(_) => Err("manifest names another evidence bundle".into()),
            None => Err("no manifest".into()),
        },
    );
    push(
        &mut checks,
        "bundle.bound_to_manifest_draft",
        match (&m, &vb) {
            (Some(m), Ok(b)) => {
                let mut draft = m.clone();
                draft.evidence_bundle_digest.clear();
                draft.attestation_result_digest.clear();
                draft.attestation_status.clear();
                draft.frozen_at_ms = 0;
                if &draft.digest() == b.manifest_draft_hash() && m.kernel_id == b.kernel_id() {
                    Ok(
                        "bundle's manifest_draft_hash is the manifest with evidence fields blanked"
                            .into(),
                    )
                } else {
                    Err("bundle was made for another manifest draft".into())
                }
            }
            _ => Err("manifest or bundle unusable".into()),
        },
    );
    let r = verify_result(result, verifier_public_key);
    push(
        &mut checks,
        "result.signature",
        r.as_ref()
            .map(|r| {
                format!(
                    "ear result by verifier `{}` under policy `{}`",
                    r.verifier_id, r.policy_id
                )
            })
            .map_err(|e| e.to_string()),
    );
    push(
        &mut checks,
        "result.about_this_bundle",
        match (&r, &vb) {
            (Ok(r), Ok(b))
                if r.bundle_digest == attestation::sha256(bundle)
                    && r.kernel_id == b.kernel_id()
                    && r.nonce == b.nonce().as_bytes() =>
            {
                Ok("bundle digest, kernel id and nonce match".into())
            }
            (Ok(_), Ok(_)) => Err("result is about another bundle, kernel or nonce".into()),
            _ => Err("result or bundle unusable".into()),
        },
    );
    push(
        &mut checks,
        "result.status",
        match &r {
            Ok(r) if r.status == Tier::Affirming => Ok(format!("affirming at {}", r.level)),
            Ok(r) => Err(format!("status is {}", r.status.as_str())),
            Err(_) => Err("no trusted result".into()),
        },
    );
    push(
        &mut checks,
        "manifest.names_result",
        match &m {
            Some(m) if m.attestation_result_digest == hex::encode(attestation::sha256(result)) => {
                Ok("result digest matches".into())
            }
            Some(_) => Err("manifest names another result".into()),
            None => Err("no manifest".into()),
        },
    );
    if let (Some(policy), Ok(b)) = (policy, &vb) {
        let ctx = AppraisalContext {
            policy,
            expected_nonce: b.nonce(),
            now_ms: b.created_at_ms(),
            event_log_base: attestation::appraisal::EventLogBase::Stateless,
        };
        let a = appraise(b, &ctx);
        push(
            &mut checks,
            "evidence.reappraised",
            if a.status == Tier::Affirming {
                Ok(format!(
                    "affirming under policy `{}` at {}",
                    policy.policy_id, a.level
                ))
            } else {
                Err(a.reasons().join("; "))
            },
        );
    } else if policy.is_some() && !bundle_ok {
        push(
            &mut checks,
            "evidence.reappraised",
            Err("bundle unusable".into()),
        );
    }
    let verified = checks.iter().all(|c| c.ok);
    OfflineReport {
        kernel_id,
        level,
        checks,
        verified,
    }
}

/// Verifies a plain Ed25519 signature (what a FROST group signature is) over `msg`.
pub fn verify_group_signature(group_public_key: &[u8], msg: &[u8], signature: &[u8]) -> bool {
    ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, group_public_key)
        .verify(msg, signature)
        .is_ok()
}

/// Reads an audit package directory (KEE-1 P7, see docs/auditor.md) and verifies it offline:
/// the ALE chain, every block's Merkle root, previous-root links, every block's group
/// signature and, with `ale`, that ALE's inclusion proof. `Err` only when a file cannot be
/// read; content that does not parse is a failed `package.parse` check.
pub fn verify_audit_package(
    dir: &std::path::Path,
    ale: Option<u64>,
    pinned_group_key: Option<&[u8]>,
) -> std::io::Result<attestation::gar::PackageReport> {
    use attestation::gar::{files, Package, PackageReport};
    let read = |name: &str| -> std::io::Result<Vec<u8>> {
        let path = dir.join(name);
        let meta = std::fs::metadata(&path)?;
        if meta.len() > attestation::gar::MAX_FILE_BYTES as u64 {
            return Err(std::io::Error::other(format!(
                "`{}` is larger than 256 MiB",
                path.display()
            )));
        }
        std::fs::read(&path)
            .map_err(|e| std::io::Error::new(e.kind(), format!("`{}`: {e}", path.display())))
    };
    let (m, a, b, s, g) = (
        read(files::MANIFEST)?,
        read(files::ALES)?,
        read(files::BLOCKS)?,
        read(files::SIGNATURES)?,
        read(files::GROUP_KEY)?,
    );
    Ok(match Package::parse(&m, &a, &b, &s, &g) {
        Ok(p) => attestation::gar::verify_package(&p, ale, pinned_group_key),
        Err(e) => PackageReport {
            kernel_id: String::new(),
            ales: 0,
            blocks: 0,
            checks: vec![attestation::gar::Check {
                check: "package.parse".into(),
                ok: false,
                detail: e.to_string(),
            }],
            inclusion: None,
            verified: false,
        },
    })
}
