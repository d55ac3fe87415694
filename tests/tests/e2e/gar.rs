//! KEE-1 P7 / KEE-2 D3, the Governance Audit Record, on real parts (a 3-kernel cluster with
//! swtpm, sockets, SQLite, FROST signing across kernels):
//!
//! * session blocks close, get one threshold signature each, and the exported audit package
//!   verifies offline with an inclusion proof; a flipped byte in an ALE, a block or a
//!   signature, or a removed ALE, fails the check that names it;
//! * quorum loss and the anchoring watchdog are in tests/gar_watchdog.rs (one cluster per
//!   test process).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::cast_possible_truncation,
    reason = "test and bench code: any failure should stop the run loudly"
)]

use crate::common;

use attestation::gar::{files, Package};
use common::*;
use std::path::Path;
use std::time::Duration;
use wire::msg::{Decision, EvaluateParams, Request, Response};

const WAIT: Duration = Duration::from_secs(60);
/// Booting three kernels (vTPM key creation on swtpm) takes long on a loaded two-core machine.
const BOOT: Duration = Duration::from_secs(240);

async fn evaluate(n: &Node, session: &str) -> wire::msg::DecisionInfo {
    match call(
        &n.public,
        &Request::Evaluate(EvaluateParams {
            principal: "Agent::\"planner\"".into(),
            action: "Action::\"read\"".into(),
            resource: "Dataset::\"census\"".into(),
            context_json: r#"{"purpose":"relief"}"#.into(),
            entities_json: String::new(),
            session_id: session.into(),
            agent_xpid: String::new(),
        }),
    )
    .await
    {
        Response::Decision(d) => d,
        other => panic!("{other:?}"),
    }
}

/// Closes and signs everything now (retrying while a peer is still coming back).
async fn anchor_now(n: &Node) {
    let deadline = std::time::Instant::now() + WAIT;
    while let Err(why) = n.kernel.anchor_now().await {
        assert!(std::time::Instant::now() < deadline, "anchoring: {why}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn copy_package(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for f in [
        files::MANIFEST,
        files::ALES,
        files::BLOCKS,
        files::SIGNATURES,
        files::GROUP_KEY,
    ] {
        std::fs::copy(from.join(f), to.join(f)).unwrap();
    }
}

/// Flips one bit of the first occurrence of `needle` in `dir/file`.
fn flip(dir: &Path, file: &str, needle: &[u8], at: usize) {
    let mut bytes = std::fs::read(dir.join(file)).unwrap();
    let pos = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap_or_else(|| panic!("{file} does not hold the bytes to flip"));
    bytes[pos + at] ^= 0x01;
    std::fs::write(dir.join(file), bytes).unwrap();
}

/// The auditor's binary on the real package and on a tampered copy, when the workspace's
/// binaries are built (`cargo xtask test` builds them first; `verifier/tests/audit_cli.rs`
/// covers the exit codes on its own).
fn verify_cli(good: &Path, tampered: &Path, group_key: &[u8], ale: u64) {
    let exe = std::env::current_exe().unwrap();
    let Some(bin) = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("verify"))
        .filter(|b| b.is_file())
    else {
        eprintln!("the `verify` binary is not built; its run on the cluster's package is skipped");
        return;
    };
    let run = |dir: &Path| {
        let out = std::process::Command::new(&bin)
            .args(["audit", "--json", "--ale", &ale.to_string()])
            .arg("--group-public-key")
            .arg(hex::encode(group_key))
            .arg("--package")
            .arg(dir)
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        (out.status.code(), v)
    };
    let (code, v) = run(good);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["inclusion"]["seq"], ale);
    let (code, v) = run(tampered);
    assert_eq!(code, Some(1), "{v}");
    assert!(
        v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["check"] == "ales.chain" && c["ok"] == false),
        "{v}"
    );
}

fn failed(report: &attestation::gar::PackageReport) -> Vec<String> {
    report
        .checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| format!("{}: {}", c.check, c.detail))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn session_blocks_are_threshold_signed_and_the_exported_package_verifies_offline() {
    let c = Cluster::start(Options {
        gar: enclave::GarConfig {
            anchor_interval_ms: 400,
            max_block_ales: 8,
        },
        ..Options::default()
    })
    .await;
    c.settle(BOOT).await;
    let k1 = c.node("k1");
    let mut seqs = Vec::new();
    for i in 0..30 {
        let session = ["alpha", "beta", "gamma"][i % 3];
        let d = evaluate(k1, session).await;
        assert_eq!(d.decision, Decision::Allow);
        seqs.push(d.ale_seq);
    }
    k1.kernel.end_session("alpha").unwrap();
    c.wait_for("k1's decisions anchored", WAIT, |c| {
        let log = c.node("k1").kernel.audit_log();
        log.blocks_covering(seqs[0], *seqs.last().unwrap())
            .unwrap()
            .1
            >= 30
            && log.pending_blocks().unwrap().is_empty()
    })
    .await;
    anchor_now(k1).await;
    let dir = c.dir.path().join("package");
    let summary = k1.kernel.audit_log().export("k1", &dir).unwrap();
    assert!(summary.ales >= 30 && summary.blocks >= 4, "{summary:?}");

    let target = seqs[7];
    let report =
        verifier::offline::verify_audit_package(&dir, Some(target), Some(&c.group_public_key))
            .unwrap();
    assert!(report.verified, "{:?}", failed(&report));
    let proof = report.inclusion.clone().unwrap();
    assert_eq!(proof.seq, target);
    assert_eq!(
        proof.block_id,
        hex::encode(attestation::gar::trace_id("beta"))
    );
    assert!(proof.tree_size <= 8);

    // Every block's signature is the group's plain Ed25519 signature; blocks chain by root.
    let read = |f: &str| std::fs::read(dir.join(f)).unwrap();
    let p = Package::parse(
        &read(files::MANIFEST),
        &read(files::ALES),
        &read(files::BLOCKS),
        &read(files::SIGNATURES),
        &read(files::GROUP_KEY),
    )
    .unwrap();
    assert_eq!(p.group_public_key, c.group_public_key);
    // 30 ALEs in 3 sessions, at most 8 per block: far fewer signatures than ALEs.
    let ours: Vec<_> = p
        .blocks
        .iter()
        .filter(|b| ["alpha", "beta", "gamma"].contains(&b.session_id.as_str()))
        .collect();
    assert_eq!(ours.iter().map(|b| b.seqs.len()).sum::<usize>(), 30);
    assert!(
        (6..30).contains(&ours.len()),
        "{} blocks for 30 ALEs",
        ours.len()
    );
    for (b, s) in p.blocks.iter().zip(&p.signatures) {
        assert!(verifier::offline::verify_group_signature(
            &c.group_public_key,
            &b.signing_digest(),
            &s.signature
        ));
        assert!(s.signers.len() >= 2, "{s:?}");
    }

    // A flipped byte in an ALE.
    let t = c.dir.path().join("t-ale");
    copy_package(&dir, &t);
    flip(&t, files::ALES, b"soos.governance.cedar.decision", 5);
    verify_cli(&dir, &t, &c.group_public_key, target);
    let r = verifier::offline::verify_audit_package(&t, None, None).unwrap();
    assert!(!r.verified);
    assert!(
        failed(&r).iter().any(|f| f.starts_with("ales.chain")),
        "{:?}",
        failed(&r)
    );
    assert!(
        failed(&r)
            .iter()
            .any(|f| f.starts_with("blocks.merkle_root")),
        "{:?}",
        failed(&r)
    );

    // A flipped byte in a block (its root).
    let t = c.dir.path().join("t-block");
    copy_package(&dir, &t);
    flip(&t, files::BLOCKS, &p.blocks[1].root, 3);
    let r = verifier::offline::verify_audit_package(&t, None, None).unwrap();
    assert!(
        failed(&r)
            .iter()
            .any(|f| f.starts_with("blocks.merkle_root")),
        "{:?}",
        failed(&r)
    );
    assert!(
        failed(&r).iter().any(|f| f.starts_with("blocks.chain")),
        "{:?}",
        failed(&r)
    );
    assert!(
        failed(&r).iter().any(|f| f.starts_with("blocks.signature")),
        "{:?}",
        failed(&r)
    );

    // A flipped byte in a signature.
    let t = c.dir.path().join("t-sig");
    copy_package(&dir, &t);
    flip(&t, files::SIGNATURES, &p.signatures[2].signature, 10);
    let r = verifier::offline::verify_audit_package(&t, None, None).unwrap();
    assert_eq!(
        failed(&r),
        vec![format!(
            "blocks.signature: block {}: the group signature does not verify",
            p.blocks[2].height
        )]
    );

    // A removed ALE (manifest count adjusted, as a careful forger would).
    let t = c.dir.path().join("t-removed");
    copy_package(&dir, &t);
    let mut q = p.clone();
    q.ales.remove(4);
    q.manifest.ales -= 1;
    enclave::audit::write_package(&q, &t).unwrap();
    let r = verifier::offline::verify_audit_package(&t, None, None).unwrap();
    assert!(
        failed(&r)
            .iter()
            .any(|f| f.starts_with("ales.chain: sequence gap")),
        "{:?}",
        failed(&r)
    );

    // A package that is not one at all: a failed parse check, not a panic.
    let t = c.dir.path().join("t-junk");
    copy_package(&dir, &t);
    std::fs::write(t.join(files::BLOCKS), b"\x9f\x9f\x9f").unwrap();
    let r = verifier::offline::verify_audit_package(&t, None, None).unwrap();
    assert_eq!(r.checks[0].check, "package.parse");
    assert!(!r.verified);
    assert!(
        verifier::offline::verify_audit_package(&c.dir.path().join("nothing"), None, None).is_err()
    );
}
