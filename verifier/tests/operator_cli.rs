//! The operator verbs on a real database: `verifier kernels|status|revoke|admit|metrics`,
//! each with `--json`, and their exit codes. `revoke` queues a durable command that a running
//! service applies; here no service runs, so it stays queued (and `--wait-ms 0` returns at once).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test code: any failure should stop the run loudly"
)]

use std::process::Command;

fn verifier(args: &[&str]) -> (i32, serde_json::Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_verifier"))
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let json = serde_json::from_str(stdout.trim()).unwrap_or(serde_json::Value::Null);
    (
        out.status.code().unwrap_or(-1),
        json,
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn fixture() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("v.db");
    let store = verifier::Store::open(&db).unwrap();
    for k in ["k1", "k2"] {
        store
            .register_kernel(k, "c1", &[1; 32], &[2; 32], &[3; 32], 1)
            .unwrap();
    }
    (dir, db.display().to_string())
}

#[test]
fn kernels_status_revoke_admit_and_metrics_speak_json() {
    let (_dir, db) = fixture();
    let (rc, j, _) = verifier(&["kernels", "--db", &db, "--json"]);
    assert_eq!(rc, 0);
    let ks = j["kernels"].as_array().unwrap();
    assert_eq!(ks.len(), 2);
    assert_eq!(ks[0]["kernel_id"], "k1");
    assert_eq!(ks[0]["state"], "registered");
    assert_eq!(ks[0]["ceremony_id"], "c1");

    let (rc, j, _) = verifier(&["status", "k1", "--db", &db, "--json"]);
    assert_eq!(rc, 0);
    assert_eq!(j["kernel"]["kernel_id"], "k1");
    assert_eq!(j["history"][0]["event"], "registered");
    assert!(j["revocations"].as_array().unwrap().is_empty());

    let (rc, j, _) = verifier(&[
        "revoke",
        "k2",
        "--db",
        &db,
        "--reason",
        "lost host",
        "--wait-ms",
        "0",
        "--json",
    ]);
    assert_eq!(rc, 0);
    assert_eq!(j["kernel_id"], "k2");
    assert_eq!(j["action"], "revoke");
    assert_eq!(j["reason"], "lost host");
    assert!(
        j["applied_at_ms"].is_null(),
        "no service is running to apply it"
    );

    let (rc, j, _) = verifier(&["admit", "k2", "--db", &db, "--wait-ms", "0", "--json"]);
    assert_eq!(rc, 0);
    assert_eq!(j["action"], "admit");

    let (rc, j, _) = verifier(&["metrics", "--db", &db, "--json"]);
    assert_eq!(rc, 0);
    assert!(j["metrics"].is_null());

    // Text output names the columns.
    let out = Command::new(env!("CARGO_BIN_EXE_verifier"))
        .args(["kernels", "--db", &db])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("KERNEL"), "{text}");
    assert!(text.contains("registered"), "{text}");
}

#[test]
fn unknown_kernels_and_missing_databases_exit_1_with_the_reason() {
    let (dir, db) = fixture();
    let (rc, _, err) = verifier(&["status", "k9", "--db", &db, "--json"]);
    assert_eq!(rc, 1);
    assert!(err.contains("kernel `k9` is not registered"), "{err}");
    let (rc, _, err) = verifier(&["revoke", "k9", "--db", &db, "--wait-ms", "0"]);
    assert_eq!(rc, 1);
    assert!(err.contains("`k9`"), "{err}");
    let missing = dir.path().join("nope.db").display().to_string();
    let (rc, _, err) = verifier(&["kernels", "--db", &missing]);
    assert_eq!(rc, 1);
    assert!(err.contains("no verifier database"), "{err}");
    assert!(
        !dir.path().join("nope.db").exists(),
        "an operator verb never creates a database"
    );
    let (rc, _, _) = verifier(&["revoke", "--db", &db]);
    assert_eq!(rc, 2, "usage error");
}
