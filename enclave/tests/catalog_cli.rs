//! The publishers' `catalog` tool, process to process: keygen, create, sign, show, check.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test code: a failed expectation is a test failure"
)]

use std::path::Path;
use std::process::{Command, Output};

fn catalog(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_catalog"))
        .args(args)
        .output()
        .unwrap()
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stdout)))
}

fn keygen(dir: &Path, name: &str) -> String {
    let path = dir.join(name);
    let o = catalog(&["keygen", "--json", "--out", path.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "private key readable by others");
    }
    json(&o)["public_key"].as_str().unwrap().to_string()
}

#[test]
fn a_two_of_three_update_is_made_signed_and_checked_offline() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pubs: Vec<String> = ["a.key", "b.key", "c.key"]
        .iter()
        .map(|k| keygen(d, k))
        .collect();
    assert_eq!(pubs[0].len(), 64);
    // keygen never overwrites a key.
    assert_eq!(
        catalog(&["keygen", "--out", d.join("a.key").to_str().unwrap()])
            .status
            .code(),
        Some(2)
    );
    let policy = d.join("cap.cedar");
    std::fs::write(&policy, "permit(principal, action, resource);").unwrap();
    let file = d.join("v1.catalog");
    let f = file.to_str().unwrap();
    let o = catalog(&[
        "create",
        "--fleet-id",
        "fleet-a",
        "--version",
        "1",
        "--effective-date",
        "2026-01-01T00:00:00Z",
        "--policy",
        policy.to_str().unwrap(),
        "--out",
        f,
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut check = vec!["check", f, "--json", "--fleet-id", "fleet-a"];
    for p in &pubs {
        check.extend(["--publisher", p.as_str()]);
    }
    // Unsigned, then one signature: refused (exit 1), naming the check; two: stageable.
    for (signer, want_code) in [(None, 1), (Some("a.key"), 1), (Some("c.key"), 0)] {
        if let Some(k) = signer {
            let o = catalog(&["sign", "--key", d.join(k).to_str().unwrap(), f]);
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        }
        let o = catalog(&check);
        assert_eq!(
            o.status.code(),
            Some(want_code),
            "after {signer:?}: {:?}",
            json(&o)
        );
        if want_code == 1 {
            assert!(json(&o)["reason"]
                .as_str()
                .unwrap()
                .contains("valid publisher signatures"));
        } else {
            assert_eq!(json(&o)["publishers"].as_array().unwrap().len(), 2);
        }
    }
    // Signing twice with one key does not add a signature.
    catalog(&["sign", "--key", d.join("c.key").to_str().unwrap(), f]);
    let shown = json(&catalog(&["show", "--json", f]));
    assert_eq!(shown["version"], 1);
    assert_eq!(shown["signers"].as_array().unwrap().len(), 2);
    assert_eq!(
        shown["cap_profile_hash"].as_str().unwrap(),
        hex::encode(attestation::sha256(b"permit(principal, action, resource);"))
    );
    // Another fleet's kernels refuse it; a flipped byte is refused.
    let mut other = check.clone();
    other[4] = "fleet-b";
    assert_eq!(catalog(&other).status.code(), Some(1));
    let mut bytes = std::fs::read(&file).unwrap();
    let n = bytes.len();
    bytes[n - 10] ^= 1;
    std::fs::write(&file, &bytes).unwrap();
    assert_eq!(catalog(&check).status.code(), Some(1));
}
