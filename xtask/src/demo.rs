//! `cargo xtask demo`: the end-to-end run on the development platform (KEE1-L1, swtpm as the
//! vTPM, SQLite, all local): verifier, ceremony, three kernels behind their host proxies,
//! Cedar decisions, one threshold signature, offline verification, clean-up.

use crate::client::{call, read_raw, send_raw};
use crate::procs::{free_port_pair, wait_for, Procs};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use wire::msg::{Decision, EvaluateParams, KernelState, Request, Response, SignDigestParams};

const KERNELS: [&str; 3] = ["k1", "k2", "k3"];

/// The demo's Cedar policy set (also the cap profile every kernel commits to).
pub const CEDAR_POLICY: &str = r#"// Relief-planning agents may read census data for disaster relief.
@id("relief-read")
permit(principal in Role::"relief-planner", action == Action::"read", resource in Collection::"census")
when { context.purpose == "disaster-relief" };

// Anyone cleared may file a situation report.
@id("sitrep-write")
permit(principal, action == Action::"write", resource == Report::"sitrep")
when { context has clearance && context.clearance >= 2 };

// Nobody deletes audit material.
@id("no-delete")
forbid(principal, action == Action::"delete", resource);
"#;

fn policy_json(require_tpm: bool) -> String {
    let zero = "0".repeat(64);
    json!({
        "policy_id": "dev-kee1-l1",
        "allowed_levels": ["KEE1-L1"],
        "require_tpm": require_tpm,
        "expected_pcrs": { "0": zero, "7": zero },
        "max_evidence_age_ms": 60000,
        "result_ttl_ms": 600000,
        "nonce_ttl_ms": 30000
    })
    .to_string()
}

fn log(json_mode: bool, msg: &str) {
    // Progress goes to stderr either way; with --json stdout carries only the JSON object.
    let _ = json_mode;
    eprintln!("demo: {msg}");
}

fn entities() -> String {
    json!([
        {"uid": {"type": "Agent", "id": "planner-7"}, "attrs": {}, "parents": [{"type": "Role", "id": "relief-planner"}]},
        {"uid": {"type": "Role", "id": "relief-planner"}, "attrs": {}, "parents": []},
        {"uid": {"type": "Agent", "id": "scraper-1"}, "attrs": {}, "parents": []},
        {"uid": {"type": "Dataset", "id": "census-2025"}, "attrs": {}, "parents": [{"type": "Collection", "id": "census"}]},
        {"uid": {"type": "Collection", "id": "census"}, "attrs": {}, "parents": []}
    ])
    .to_string()
}

fn ask(principal: &str, action: &str, resource: &str, context: Value) -> EvaluateParams {
    EvaluateParams {
        principal: principal.into(),
        action: action.into(),
        resource: resource.into(),
        context_json: context.to_string(),
        entities_json: entities(),
        session_id: "demo-session-1".into(),
        agent_xpid: String::new(),
    }
}

/// Runs the demo; returns the JSON summary.
pub fn run(bin: &Path, root: &Path, json_mode: bool) -> anyhow::Result<Value> {
    let _ = std::fs::remove_dir_all(root);
    std::fs::create_dir_all(root)?;
    let mut procs = Procs::default();
    let policy_path = root.join("policy.json");
    std::fs::write(&policy_path, policy_json(true))?;
    let cedar_path = root.join("governance.cedar");
    std::fs::write(&cedar_path, CEDAR_POLICY)?;
    let db = root.join("verifier.db");
    let state_root = root.join("kernels");

    log(
        json_mode,
        "ceremony: FROST 2-of-3 distributed key generation planned (signed plan per kernel); the kernels make the key among themselves once attested",
    );
    let out = Command::new(bin.join("verifier"))
        .args(["dkg", "--json", "--threshold", "2", "--signers", "3"])
        .arg("--db")
        .arg(&db)
        .arg("--policy")
        .arg(&policy_path)
        .arg("--state-root")
        .arg(&state_root)
        .args(KERNELS.iter().flat_map(|k| ["--kernel", k]))
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "ceremony failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _plan: Value = serde_json::from_slice(&out.stdout)?;
    // Known once the kernels have run the DKG: read from their manifests below.
    let mut group_key = String::new();

    let vport = free_port_pair()?;
    let vkey_path = root.join("verifier.pub");
    log(json_mode, &format!("verifier on 127.0.0.1:{vport}"));
    procs.start(
        "verifier",
        Command::new(bin.join("verifier"))
            .arg("serve")
            .arg("--db")
            .arg(&db)
            .arg("--policy")
            .arg(&policy_path)
            .arg("--listen")
            .arg(format!("127.0.0.1:{vport}"))
            .arg("--require-tls")
            .arg("--public-key-out")
            .arg(&vkey_path),
        &root.join("verifier.log"),
    )?;
    wait_for("verifier public key", Duration::from_secs(20), || {
        vkey_path.exists()
    })?;
    let vkey = std::fs::read_to_string(&vkey_path)?;

    let started = Instant::now();
    let mut sockets: Vec<(String, PathBuf)> = Vec::new();
    for (i, k) in KERNELS.iter().enumerate() {
        let dir = state_root.join(k);
        let tpm_port = free_port_pair()?;
        let tpm_state = dir.join("tpm");
        std::fs::create_dir_all(&tpm_state)?;
        procs.start(
            &format!("swtpm-{k}"),
            Command::new("swtpm")
                .args(["socket", "--tpm2", "--flags", "not-need-init,startup-clear"])
                .arg("--tpmstate")
                .arg(format!("dir={}", tpm_state.display()))
                .arg("--server")
                .arg(format!("type=tcp,port={tpm_port}"))
                .arg("--ctrl")
                .arg(format!("type=tcp,port={}", tpm_port + 1)),
            &dir.join("swtpm.log"),
        )?;
        wait_for("swtpm", Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", tpm_port)).is_ok()
        })?;
        let vsock = dir.join("vsock.sock");
        let public = dir.join("public.sock");
        let mut host = Command::new(bin.join("host"));
        host.arg("proxy")
            .arg("--listen")
            .arg(format!("unix:{}", public.display()))
            .arg("--enclave")
            .arg(format!(
                "hybrid:{}:{}",
                vsock.display(),
                wire::hybrid::GOVERNANCE_PORT
            ))
            .arg("--egress-tls")
            .arg(format!(
                "{}=tcp:127.0.0.1:{vport}",
                wire::hybrid::VERIFIER_PORT
            ))
            .arg("--metrics-file")
            .arg(dir.join("proxy-metrics.json"))
            // The attested TLS route: records only, to the enclave's TLS server.
            .arg("--listen-tls")
            .arg(format!("unix:{}", dir.join("tls.sock").display()))
            .arg("--enclave-tls")
            .arg(format!("hybrid:{}:{TLS_PORT}", vsock.display()));
        let mut enclave = Command::new(bin.join("enclave"));
        enclave
            .arg("--kernel-id")
            .arg(k)
            .arg("--state-dir")
            .arg(&dir)
            .arg("--vsock-uds")
            .arg(&vsock)
            .arg("--verifier-public-key")
            .arg(vkey.trim())
            .arg("--cedar-policy")
            .arg(&cedar_path)
            .arg("--platform")
            .arg("software")
            .arg("--tpm-tcti")
            .arg(format!("swtpm:host=127.0.0.1,port={tpm_port}"))
            // Session blocks close and are threshold-signed every second.
            .arg("--anchor-interval-ms")
            .arg("1000");
        for (j, peer) in KERNELS.iter().enumerate() {
            if j == i {
                continue;
            }
            let port = wire::hybrid::PEER_PORT_BASE + u32::try_from(j)?;
            // Peer calls: mutually attested TLS, carried as records to the peer's TLS route.
            let peer_tls = state_root.join(peer).join("tls.sock");
            host.arg("--egress-tls").arg(format!(
                "{port}={}",
                format_args!("unix:{}", peer_tls.display())
            ));
            enclave.arg("--peer").arg(format!("{peer}={port}"));
        }
        procs.start(&format!("host-{k}"), &mut host, &dir.join("host.log"))?;
        procs.start(
            &format!("enclave-{k}"),
            &mut enclave,
            &dir.join("enclave.log"),
        )?;
        sockets.push((k.to_string(), public));
    }
    log(
        json_mode,
        "three kernels started (software platform KEE1-L1 + swtpm vTPM); waiting for appraisal",
    );

    let mut kernels = Vec::new();
    for (k, sock) in &sockets {
        let mut last = None;
        wait_for(&format!("{k} to serve"), Duration::from_secs(60), || {
            if let Ok(Response::Health(h)) = call(sock, &Request::Health) {
                let done = h.state != KernelState::Booting && h.state != KernelState::Sealed
                    || (h.state == KernelState::Sealed
                        && h.reason
                            .as_deref()
                            .is_some_and(|r| !r.contains("unreachable")));
                last = Some(h);
                return done;
            }
            false
        })
        .map_err(|e| anyhow::anyhow!("{e}; last health: {last:?}"))?;
        procs.check_alive()?;
        let h = last.ok_or_else(|| anyhow::anyhow!("no health from {k}"))?;
        let mut status = String::from("none");
        if let Ok(Response::Manifest(m)) = call(sock, &Request::Manifest) {
            std::fs::write(root.join(format!("{k}-manifest.cbor")), wire::encode(&m)?)?;
            let man: attestation_view::Manifest = wire::decode(&m.manifest)?;
            status = man.attestation_status;
            if group_key.is_empty() {
                group_key = man.group_public_key.clone();
            }
            anyhow::ensure!(
                man.group_public_key == group_key,
                "{k}'s manifest names another group key than the other kernels"
            );
        }
        log(
            json_mode,
            &format!(
                "{k}: {:?}, {} , attestation {status}, boot-to-serving {:?} ms",
                h.state, h.level, h.boot_to_serving_ms
            ),
        );
        kernels.push(json!({
            "kernel_id": k,
            "state": format!("{:?}", h.state).to_lowercase(),
            "attestation_status": status,
            "level": h.level,
            "unsealed": h.state == KernelState::Serving,
            "boot_to_serving_ms": h.boot_to_serving_ms,
            "reason": h.reason,
        }));
    }

    let k1 = &sockets
        .first()
        .ok_or_else(|| anyhow::anyhow!("no kernels"))?
        .1;
    let asks = vec![
        (
            "planner reads census for relief",
            ask(
                "Agent::\"planner-7\"",
                "Action::\"read\"",
                "Dataset::\"census-2025\"",
                json!({"purpose": "disaster-relief"}),
            ),
        ),
        (
            "planner reads census for marketing",
            ask(
                "Agent::\"planner-7\"",
                "Action::\"read\"",
                "Dataset::\"census-2025\"",
                json!({"purpose": "marketing"}),
            ),
        ),
        (
            "scraper reads census",
            ask(
                "Agent::\"scraper-1\"",
                "Action::\"read\"",
                "Dataset::\"census-2025\"",
                json!({"purpose": "disaster-relief"}),
            ),
        ),
        (
            "cleared agent files sitrep",
            ask(
                "Agent::\"planner-7\"",
                "Action::\"write\"",
                "Report::\"sitrep\"",
                json!({"clearance": 3}),
            ),
        ),
        (
            "planner deletes audit log",
            ask(
                "Agent::\"planner-7\"",
                "Action::\"delete\"",
                "Log::\"audit\"",
                json!({}),
            ),
        ),
        (
            "malformed principal",
            ask(
                "not-an-entity",
                "Action::\"read\"",
                "Dataset::\"census-2025\"",
                json!({}),
            ),
        ),
    ];
    let mut decisions = Vec::new();
    for (label, p) in asks {
        match call(k1, &Request::Evaluate(p))? {
            Response::Decision(d) => {
                let word = if d.decision == Decision::Allow {
                    "ALLOW"
                } else {
                    "DENY"
                };
                log(
                    json_mode,
                    &format!(
                        "evaluate: {label}: {word} {:?} {:?} (audit seq {})",
                        d.policies, d.reasons, d.ale_seq
                    ),
                );
                decisions.push(json!({"request": label, "decision": word.to_lowercase(), "policies": d.policies, "reasons": d.reasons, "audit_seq": d.ale_seq}));
            }
            other => anyhow::bail!("evaluate on k1 failed: {other:?}"),
        }
    }

    // The proxy refuses what is not on its allowlist and keeps serving.
    let refused = {
        let mut s = std::os::unix::net::UnixStream::connect(k1)?;
        #[derive(serde::Serialize)]
        struct Bogus {
            method: &'static str,
        }
        send_raw(
            &mut s,
            &wire::encode(&Bogus {
                method: "unseal_all",
            })?,
        )?;
        let r: Response = wire::decode(&read_raw(&mut s)?)?;
        matches!(r, Response::Error(ref e) if e.code == wire::msg::ErrorCode::MethodNotAllowed)
    };

    let attested_tls = attested_tls_calls(bin, &state_root, &vkey_path, json_mode)?;

    let digest = attestation_view::sha256(b"GAR session block demo-session-1");
    let (signature, signers, sig_group) = match call(
        k1,
        &Request::SignDigest(SignDigestParams {
            digest: digest.to_vec(),
        }),
    )? {
        Response::Signature(s) => (
            hex::encode(&s.signature),
            s.signers,
            hex::encode(&s.group_public_key),
        ),
        other => anyhow::bail!("sign_digest failed: {other:?}"),
    };
    log(
        json_mode,
        &format!(
            "threshold signature by {signers:?}: {}…",
            signature.get(..32).unwrap_or_default()
        ),
    );

    // Offline checks with the auditor's CLI.
    let sig_ok = Command::new(bin.join("verify"))
        .args([
            "signature",
            "--group-public-key",
            &group_key,
            "--digest",
            &hex::encode(digest),
            "--signature",
            &signature,
        ])
        .output()?
        .status
        .success();
    let mut offline = Vec::new();
    for (k, _) in &sockets {
        let input = root.join(format!("{k}-manifest.cbor"));
        if !input.exists() {
            offline.push(json!({"kernel_id": k, "verified": false, "detail": "no manifest"}));
            continue;
        }
        let out = Command::new(bin.join("verify"))
            .args(["manifest", "--json", "--verifier-public-key", vkey.trim()])
            .arg("--input")
            .arg(&input)
            .arg("--policy")
            .arg(&policy_path)
            .output()?;
        let report: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        offline.push(
            json!({"kernel_id": k, "verified": out.status.success(), "checks": report["checks"]}),
        );
    }
    log(
        json_mode,
        &format!(
            "offline: signature valid = {sig_ok}; manifests verified = {}",
            offline
                .iter()
                .filter(|o| o["verified"] == json!(true))
                .count()
        ),
    );
    let audit = audit_package(
        bin,
        root,
        &state_root,
        vkey.trim(),
        &group_key,
        &decisions,
        json_mode,
    )?;
    let governance = governance_records(bin, root, k1, vkey.trim(), json_mode)?;
    let unsealed = kernels
        .iter()
        .filter(|k| k["unsealed"] == json!(true))
        .count();
    let link = verifier_link(vport, unsealed, json_mode);
    let revocation = revoke_one(bin, &db, &sockets, &digest, json_mode)?;
    let vendor = vendor_evidence(bin, json_mode)?;
    let metrics: Value = std::fs::read(state_root.join("k1").join("proxy-metrics.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null);
    let summary = json!({
        "platform": "software (KEE1-L1) + swtpm vTPM",
        "ceremony": {"threshold": 2, "signers": 3, "group_public_key": group_key},
        "kernels": kernels,
        "decisions": decisions,
        "proxy": {"refused_non_allowlisted_method": refused, "k1_metrics": metrics},
        "signature": {"digest": hex::encode(digest), "signature": signature, "signers": signers,
                      "group_public_key": sig_group, "verified_offline": sig_ok},
        "offline_verification": offline,
        "attested_tls": attested_tls,
        "verifier_link": link,
        "revocation": revocation,
        "governance": governance,
        "audit_package": audit["dir"].clone(),
        "audit": audit,
        "vendor_evidence": vendor,
        "elapsed_ms": u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    });
    drop(procs);
    Ok(summary)
}

/// The kernels reached the verifier over TLS on its pinned result key (they unsealed, and the
/// verifier runs with `--require-tls`); a plaintext frame to the verifier is not answered.
fn verifier_link(vport: u16, unsealed: usize, json_mode: bool) -> Value {
    use std::io::{Read, Write};
    let probe = || -> std::io::Result<usize> {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", vport))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        let body = wire::encode(&wire::verifier::VerifierRequest::Nonce {
            kernel_id: "k1".into(),
        })
        .map_err(std::io::Error::other)?;
        let len = u32::try_from(body.len()).map_err(std::io::Error::other)?;
        let mut frame = len.to_be_bytes().to_vec();
        frame.extend_from_slice(&body);
        let mut answer = Vec::new();
        // The verifier closes a plaintext connection unanswered. It may do so after the
        // first byte, before the rest arrived: the kernel then resets the connection, which
        // the probe sees on its write or its read. Both count as "closed unanswered"; a
        // timeout (a verifier holding the connection open) does not.
        let exchanged = s
            .write_all(&frame)
            .and_then(|()| s.read_to_end(&mut answer));
        match exchanged {
            Ok(_) => Ok(answer.len()),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionReset
                        | std::io::ErrorKind::BrokenPipe
                        | std::io::ErrorKind::ConnectionAborted
                ) =>
            {
                Ok(0)
            }
            Err(e) => Err(e),
        }
    };
    let answered = probe();
    let refused = matches!(answered, Ok(0));
    let probe = match &answered {
        Ok(0) => "closed unanswered".to_string(),
        Ok(n) => format!("answered with {n} bytes"),
        Err(e) => format!("probe failed: {e}"),
    };
    log(
        json_mode,
        &format!(
            "verifier link: {unsealed} kernels appraised over tls on the pinned result key; a plaintext request {} ({probe})",
            if refused { "was refused unanswered" } else { "was NOT refused" }
        ),
    );
    json!({
        "transport": "tls 1.3, server key = the verifier's pinned ed25519 result key",
        "kernels_appraised_over_tls": unsealed,
        "plaintext_refused": refused,
        "plaintext_probe": probe,
        "as_expected": refused && unsealed > 0,
    })
}

/// KEE-1 P3 and PEER: k1 issues an ACD Record for an agent after the four-check, and opens a
/// PEER transaction with k2 (mutual attestation, jointly derived `ptxn_id`, countersigned
/// PTR); both records are written beside the run and checked offline with `verify acd` and
/// `verify ptr`.
fn governance_records(
    bin: &Path,
    root: &Path,
    k1: &Path,
    vkey: &str,
    json_mode: bool,
) -> anyhow::Result<Value> {
    let nonce = attestation_view::sha256(b"resource provider nonce");
    let xpid = wire::xpid::derive(&wire::xpid::XpidInput {
        initiating_kia_id: "k1",
        responding_kia_id: "agent:planner",
        initiated_at: "2026-12-06T05:00:00.000Z",
        initiating_nonce: "00112233445566778899aabbccddeeff",
        responding_nonce: "ffeeddccbbaa99887766554433221100",
    })?
    .to_string();
    // The feed must have answered once before the revocation status is known (P8).
    let deadline = Instant::now() + Duration::from_secs(30);
    let acd = loop {
        match call(
            k1,
            &Request::AcdIssue(wire::msg::AcdIssueParams {
                agent_xpid: xpid.clone(),
                agent_kia_id: String::new(),
                resource_provider: "rp:demo-gateway".into(),
                nonce: nonce.to_vec(),
                session_id: "demo-session-1".into(),
            }),
        )? {
            Response::Acd(a) => break a,
            other if Instant::now() >= deadline => {
                anyhow::bail!("acd_issue on k1 failed: {other:?}")
            }
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    };
    let acd_path = root.join("k1-acd-record.cbor");
    std::fs::write(&acd_path, wire::encode(&*acd)?)?;
    let acd_ok = Command::new(bin.join("verify"))
        .args([
            "acd",
            "--verifier-public-key",
            vkey,
            "--nonce",
            &hex::encode(nonce),
        ])
        .arg("--record")
        .arg(&acd_path)
        .output()?
        .status
        .success();
    let ptr = match call(
        k1,
        &Request::PeerTransaction(wire::msg::PeerTransactionParams {
            responder_kernel_id: "k2".into(),
            transaction_class: wire::msg::TransactionClass::DataExchange,
            domain_transaction_ref: "demo-exchange-1".into(),
            acd_session_id: String::new(),
        }),
    )? {
        Response::PeerRecord(r) => r,
        other => anyhow::bail!("peer_transaction k1 -> k2 failed: {other:?}"),
    };
    let ptr_path = root.join("k1-k2-ptr.cbor");
    std::fs::write(&ptr_path, wire::encode(&*ptr)?)?;
    let ptr_ok = Command::new(bin.join("verify"))
        .args(["ptr", "--verifier-public-key", vkey])
        .arg("--record")
        .arg(&ptr_path)
        .output()?
        .status
        .success();
    let completed = matches!(
        call(
            k1,
            &Request::PeerComplete(wire::msg::PeerCompleteParams {
                ptxn_id: ptr.ptxn_id.clone(),
            }),
        )?,
        Response::PeerCompleted(_)
    );
    log(
        json_mode,
        &format!(
            "acd: record for XPID {xpid} issued by k1 (four checks passed), verified offline = {acd_ok}; peer: k1 -> k2 ptxn_id {}, countersigned PTR verified offline = {ptr_ok}, completed = {completed}",
            ptr.ptxn_id
        ),
    );
    Ok(json!({
        "acd_record": acd_path, "acd_verified_offline": acd_ok, "agent_xpid": xpid,
        "ptxn_id": ptr.ptxn_id, "ptr": ptr_path, "ptr_verified_offline": ptr_ok,
        "peer_completed": completed,
        "as_expected": acd_ok && ptr_ok && completed,
    }))
}

/// The Governance Audit Record of the run: k1's anchored session blocks exported as an audit
/// package (`enclave --export-audit`) once they cover every decision, then checked offline by
/// `verify audit` with the ceremony's group key pinned and an inclusion proof of the last
/// decision.
fn audit_package(
    bin: &Path,
    root: &Path,
    state_root: &Path,
    vkey: &str,
    group_key: &str,
    decisions: &[Value],
    json_mode: bool,
) -> anyhow::Result<Value> {
    let last = decisions
        .iter()
        .filter_map(|d| d["audit_seq"].as_u64())
        .max()
        .unwrap_or(1);
    let dir = root.join("audit-package-k1");
    let mut exported = Value::Null;
    wait_for(
        "k1's decisions to be anchored in signed session blocks",
        Duration::from_secs(30),
        || {
            std::thread::sleep(Duration::from_millis(250));
            let out = Command::new(bin.join("enclave"))
                .args(["--kernel-id", "k1", "--verifier-public-key", vkey])
                .arg("--state-dir")
                .arg(state_root.join("k1"))
                .arg("--export-audit")
                .arg(&dir)
                .output();
            match out {
                Ok(o) if o.status.success() => {
                    exported = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
                    exported["ales"].as_u64().is_some_and(|n| n >= last)
                }
                _ => false,
            }
        },
    )?;
    let out = Command::new(bin.join("verify"))
        .args(["audit", "--json", "--group-public-key", group_key])
        .arg("--package")
        .arg(&dir)
        .args(["--ale", &last.to_string()])
        .output()?;
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    let verified = out.status.success();
    log(
        json_mode,
        &format!(
            "audit package of k1 at {}: {} ALEs in {} signed blocks; `verify audit` verified = {verified}",
            dir.display(),
            exported["ales"],
            exported["blocks"]
        ),
    );
    Ok(json!({
        "dir": dir.display().to_string(),
        "ales": exported["ales"],
        "blocks": exported["blocks"],
        "verified": verified,
        "checks": report["checks"],
        "inclusion": report["inclusion"],
    }))
}

/// Offline verification of real vendor evidence (the vectors shipped in
/// attestation/tests/vectors, from real AMD and Intel hardware) with the `verify` CLI, each
/// with the outcome it must give.
fn vendor_evidence(bin: &Path, json_mode: bool) -> anyhow::Result<Vec<Value>> {
    let v = crate::root().join("attestation/tests/vectors");
    let p = |rel: &str| v.join(rel).display().to_string();
    let cases: Vec<(&str, Vec<String>, bool)> = vec![
        (
            "TDX quote v4 + Intel collateral, inside its window (UpToDate)",
            vec![
                "tdx".into(),
                "--quote".into(),
                p("tdx/dcap-qvl-uptodate/quote.bin"),
                "--collateral".into(),
                p("tdx/dcap-qvl-uptodate/collateral.json"),
                "--now".into(),
                "2025-06-20T00:00:00Z".into(),
            ],
            true,
        ),
        (
            "same TDX quote, collateral expired (--now two months later)",
            vec![
                "tdx".into(),
                "--quote".into(),
                p("tdx/dcap-qvl-uptodate/quote.bin"),
                "--collateral".into(),
                p("tdx/dcap-qvl-uptodate/collateral.json"),
                "--now".into(),
                "2025-09-01T00:00:00Z".into(),
            ],
            false,
        ),
        (
            "SEV-SNP Milan report, VCEK chain to the pinned AMD root",
            vec![
                "snp".into(),
                "--report".into(),
                p("snp/trustee-milan-vcek/report.bin"),
                "--vek".into(),
                p("snp/trustee-milan-vcek/vcek.der"),
            ],
            true,
        ),
        (
            "SEV-SNP report whose guest policy allows debugging",
            vec![
                "snp".into(),
                "--report".into(),
                p("snp/go-sev-guest-milan/attestation.bin"),
                "--vek".into(),
                p("snp/go-sev-guest-milan/vcek.der"),
            ],
            false,
        ),
    ];
    let mut out = Vec::new();
    for (what, mut args, expect_affirming) in cases {
        args.push("--json".into());
        let o = Command::new(bin.join("verify")).args(&args).output()?;
        let report: Value = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
        let affirming = o.status.code() == Some(0);
        let decisive: Vec<String> = report["checks"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| c["tier"] == json!("contraindicated"))
            .map(|c| {
                format!(
                    "{}: {}",
                    c["check"].as_str().unwrap_or_default(),
                    c["reason"].as_str().unwrap_or_default()
                )
            })
            .collect();
        log(
            json_mode,
            &format!(
                "vendor evidence: {what} -> {} (expected {})",
                report["status"].as_str().unwrap_or("error"),
                if expect_affirming {
                    "affirming"
                } else {
                    "not affirming"
                }
            ),
        );
        out.push(json!({
            "evidence": what,
            "status": report["status"],
            "affirming": affirming,
            "as_expected": affirming == expect_affirming && !report.is_null(),
            "contraindicated": decisive,
        }));
    }
    Ok(out)
}

/// Human summary of the JSON.
/// The enclave's attested TLS port (`enclave::tls::TLS_PORT`; xtask stays light).
const TLS_PORT: u32 = 5443;

/// Relying parties calling k1 over attested TLS through its host proxy, with
/// `attested-call`: one whose policy k1 satisfies, and two whose policy it does not (an
/// L3-only government client, and a client that expects another kernel behind this socket).
fn attested_tls_calls(
    bin: &Path,
    state_root: &Path,
    vkey_path: &Path,
    json_mode: bool,
) -> anyhow::Result<Vec<Value>> {
    let socket = format!("unix:{}", state_root.join("k1").join("tls.sock").display());
    let evaluate = serde_json::to_string(&Request::Evaluate(ask(
        "Agent::\"planner-7\"",
        "Action::\"read\"",
        "Dataset::\"census-2025\"",
        json!({"purpose": "disaster-relief"}),
    )))?;
    let cases: [(&str, &[&str], bool); 3] = [
        (
            "development client (accepts k1 at KEE1-L1)",
            &["--kernel-id", "k1", "--level", "KEE1-L1"],
            true,
        ),
        (
            "government client (KEE1-L3 only)",
            &["--kernel-id", "k1", "--level", "KEE1-L3"],
            false,
        ),
        (
            "client expecting k2 behind k1's socket",
            &["--kernel-id", "k2", "--level", "KEE1-L1"],
            false,
        ),
    ];
    let mut out = Vec::new();
    for (client, flags, accept) in cases {
        let o = Command::new(bin.join("attested-call"))
            .args(["--json", "--connect", &socket, "--request", &evaluate])
            .arg("--verifier-public-key")
            .arg(vkey_path)
            .args(flags)
            .output()?;
        let v: Value = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
        let accepted = o.status.success();
        let detail = if accepted {
            format!(
                "attested {} at {} ({}), decision {}",
                v["peer"]["kernel_id"].as_str().unwrap_or_default(),
                v["peer"]["level"].as_str().unwrap_or_default(),
                v["peer"]["status"].as_str().unwrap_or_default(),
                v["response"]["body"]["decision"]
                    .as_str()
                    .unwrap_or("(none)")
            )
        } else {
            v["refused"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| String::from_utf8_lossy(&o.stderr).trim().to_string())
        };
        log(
            json_mode,
            &format!(
                "attested tls: {client}: {} — {detail}",
                if accepted { "accepted" } else { "refused" }
            ),
        );
        out.push(
            json!({"client": client, "accepted": accepted, "expected_accepted": accept,
                        "as_expected": accepted == accept, "detail": detail}),
        );
    }
    Ok(out)
}

/// An operator revokes k3 (`verifier revoke`): the running verifier pushes the revocation on
/// its feed, k3 freezes signing, and k1 still signs with k2.
fn revoke_one(
    bin: &Path,
    db: &Path,
    sockets: &[(String, PathBuf)],
    digest: &[u8; 32],
    json_mode: bool,
) -> anyhow::Result<Value> {
    let sock = |k: &str| {
        sockets
            .iter()
            .find(|(id, _)| id == k)
            .map(|(_, p)| p.clone())
            .ok_or_else(|| anyhow::anyhow!("no kernel {k}"))
    };
    let (k1, k3) = (sock("k1")?, sock("k3")?);
    let started = Instant::now();
    let o = Command::new(bin.join("verifier"))
        .args([
            "revoke",
            "k3",
            "--json",
            "--reason",
            "demo: operator revocation",
        ])
        .arg("--db")
        .arg(db)
        .output()?;
    anyhow::ensure!(
        o.status.success(),
        "verifier revoke failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let sign = |s: &Path| {
        call(
            s,
            &Request::SignDigest(SignDigestParams {
                digest: digest.to_vec(),
            }),
        )
    };
    let frozen = wait_for("k3 to freeze signing", Duration::from_secs(20), || {
        matches!(call(&k3, &Request::Health), Ok(Response::Health(h))
            if h.reason.as_deref().unwrap_or_default().contains("signing frozen"))
    })
    .is_ok();
    let frozen_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let k3_refused = !matches!(sign(&k3), Ok(Response::Signature(_)));
    let k1_signers = match sign(&k1) {
        Ok(Response::Signature(s)) => s.signers,
        _ => Vec::new(),
    };
    let ok =
        frozen && k3_refused && !k1_signers.is_empty() && !k1_signers.iter().any(|s| s == "k3");
    log(
        json_mode,
        &format!(
            "revocation: k3 revoked by the operator, signing frozen after {frozen_ms} ms: {frozen}; k3 refuses to sign: {k3_refused}; k1 signs with {k1_signers:?}"
        ),
    );
    Ok(
        json!({"kernel_id": "k3", "frozen": frozen, "frozen_after_ms": frozen_ms,
              "k3_refuses_to_sign": k3_refused, "k1_signers_after": k1_signers, "as_expected": ok}),
    )
}

pub fn print_human(s: &Value) {
    println!(
        "== enclave appliance demo ({})",
        s["platform"].as_str().unwrap_or_default()
    );
    println!(
        "FROST {}-of-{} group key {}",
        s["ceremony"]["threshold"],
        s["ceremony"]["signers"],
        s["ceremony"]["group_public_key"]
            .as_str()
            .unwrap_or_default()
    );
    for k in s["kernels"].as_array().into_iter().flatten() {
        println!(
            "  {}: attestation {} at {}, unsealed {}, boot-to-serving {} ms",
            k["kernel_id"].as_str().unwrap_or_default(),
            k["attestation_status"].as_str().unwrap_or_default(),
            k["level"].as_str().unwrap_or_default(),
            if k["unsealed"] == json!(true) {
                "yes"
            } else {
                "no"
            },
            k["boot_to_serving_ms"]
        );
    }
    println!("Decisions (each recorded in k1's audit log):");
    for d in s["decisions"].as_array().into_iter().flatten() {
        println!(
            "  {:5} {}  {}",
            d["decision"].as_str().unwrap_or_default().to_uppercase(),
            d["request"].as_str().unwrap_or_default(),
            d["reasons"]
        );
    }
    println!(
        "Proxy refused a non-allowlisted method: {}",
        s["proxy"]["refused_non_allowlisted_method"]
    );
    println!(
        "Threshold signature by {}: verifies as Ed25519 under the group key offline: {}",
        s["signature"]["signers"], s["signature"]["verified_offline"]
    );
    println!("Attested TLS through k1's host proxy (`attested-call`):");
    for c in s["attested_tls"].as_array().into_iter().flatten() {
        println!(
            "  {:8} {}: {}",
            if c["accepted"] == json!(true) {
                "accepted"
            } else {
                "refused"
            },
            c["client"].as_str().unwrap_or_default(),
            c["detail"].as_str().unwrap_or_default()
        );
    }
    println!(
        "Operator revoked k3: signing frozen {} (after {} ms), k3 refuses to sign {}, k1 then signs with {}",
        s["revocation"]["frozen"],
        s["revocation"]["frozen_after_ms"],
        s["revocation"]["k3_refuses_to_sign"],
        s["revocation"]["k1_signers_after"]
    );
    println!(
        "ACD record (KEE-1 P3 four-check) for XPID {} at {}: verified offline {}; PEER k1 -> k2 ptxn_id {}: countersigned PTR at {} verified offline {}, completed {}",
        s["governance"]["agent_xpid"].as_str().unwrap_or_default(),
        s["governance"]["acd_record"].as_str().unwrap_or_default(),
        s["governance"]["acd_verified_offline"],
        s["governance"]["ptxn_id"].as_str().unwrap_or_default(),
        s["governance"]["ptr"].as_str().unwrap_or_default(),
        s["governance"]["ptr_verified_offline"],
        s["governance"]["peer_completed"]
    );
    println!(
        "Audit package (k1, {} ALEs in {} FROST-signed session blocks) at {}: `verify audit` {}",
        s["audit"]["ales"],
        s["audit"]["blocks"],
        s["audit_package"].as_str().unwrap_or_default(),
        if s["audit"]["verified"] == json!(true) {
            "verified"
        } else {
            "NOT verified"
        }
    );
    println!("Vendor evidence from real hardware, verified offline with `verify`:");
    for o in s["vendor_evidence"].as_array().into_iter().flatten() {
        println!(
            "  {:15} {}{}",
            o["status"].as_str().unwrap_or("error"),
            o["evidence"].as_str().unwrap_or_default(),
            o["contraindicated"]
                .as_array()
                .and_then(|c| c.first())
                .and_then(|c| c.as_str())
                .map(|c| format!("  [{c}]"))
                .unwrap_or_default()
        );
    }
    for o in s["offline_verification"].as_array().into_iter().flatten() {
        println!(
            "  offline `verify manifest` {}: {}",
            o["kernel_id"].as_str().unwrap_or_default(),
            if o["verified"] == json!(true) {
                "verified"
            } else {
                "NOT verified"
            }
        );
    }
}

/// Just enough of the manifest to read its status (xtask stays light: no attestation crate).
mod attestation_view {
    #[derive(serde::Deserialize)]
    pub struct Manifest {
        pub attestation_status: String,
        #[serde(default)]
        pub group_public_key: String,
    }
    pub fn sha256(data: &[u8]) -> [u8; 32] {
        use sha2::Digest;
        sha2::Sha256::digest(data).into()
    }
}
