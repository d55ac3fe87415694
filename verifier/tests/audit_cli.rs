//! `verify audit` as an auditor runs it, on an audit package whose blocks carry real FROST
//! (2-of-3) group signatures: exit 0 for an intact package with an inclusion proof; exit 1,
//! naming the check, for a flipped byte in an ALE, a block or a signature, a removed ALE, or
//! a group key that is not the pinned one; exit 2 for a missing package. The package a real
//! cluster exports is checked the same way in tests/tests/e2e/gar.rs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::cast_possible_truncation,
    reason = "test code: a failure must stop the test loudly"
)]

use attestation::gar::{
    files, merkle_root, trace_id, Ale, Block, BlockSignature, Package, PackageManifest,
    GENESIS_HASH, PACKAGE_FORMAT,
};
use frost_ed25519 as frost;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

fn verify(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_verify"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// A FROST 2-of-3 group: signs `digest` with signers 1 and 3.
struct Group {
    keys: BTreeMap<frost::Identifier, frost::keys::KeyPackage>,
    public: frost::keys::PublicKeyPackage,
}

impl Group {
    fn new() -> Self {
        let rng = rand::rngs::OsRng;
        let (shares, public) =
            frost::keys::generate_with_dealer(3, 2, frost::keys::IdentifierList::Default, rng)
                .unwrap();
        let keys = shares
            .into_iter()
            .map(|(id, s)| (id, frost::keys::KeyPackage::try_from(s).unwrap()))
            .collect();
        Self { keys, public }
    }
    fn sign(&self, digest: &[u8]) -> Vec<u8> {
        let mut rng = rand::rngs::OsRng;
        let signers: Vec<_> = self.keys.iter().step_by(2).collect();
        let mut nonces = BTreeMap::new();
        let mut commitments = BTreeMap::new();
        for (id, k) in &signers {
            let (n, c) = frost::round1::commit(k.signing_share(), &mut rng);
            nonces.insert(**id, n);
            commitments.insert(**id, c);
        }
        let pkg = frost::SigningPackage::new(commitments, digest);
        let mut shares = BTreeMap::new();
        for (id, k) in &signers {
            shares.insert(**id, frost::round2::sign(&pkg, &nonces[*id], k).unwrap());
        }
        frost::aggregate(&pkg, &shares, &self.public)
            .unwrap()
            .serialize()
            .unwrap()
    }
    fn key(&self) -> Vec<u8> {
        self.public.verifying_key().serialize().unwrap()
    }
}

fn package(g: &Group) -> Package {
    let mut ales = Vec::new();
    let mut prev = GENESIS_HASH.to_vec();
    for seq in 1..=40u64 {
        let a = Ale {
            seq,
            session_id: format!("session-{}", seq % 3),
            at_ms: 1_700_000_000_000 + seq,
            kind: "soos.governance.cedar.decision".into(),
            body: seq.to_be_bytes().to_vec(),
            prev_span_hash: prev,
        };
        prev = a.hash().to_vec();
        ales.push(a);
    }
    // Two anchor intervals: ALEs 1..=20 then 21..=40, one block per session each.
    let mut blocks: Vec<Block> = Vec::new();
    let mut prev_root = GENESIS_HASH.to_vec();
    for (lo, hi) in [(1u64, 20u64), (21, 40)] {
        for s in [1u64, 2, 0] {
            let session = format!("session-{s}");
            let mine: Vec<&Ale> = ales
                .iter()
                .filter(|a| a.seq >= lo && a.seq <= hi && a.session_id == session)
                .collect();
            let root = merkle_root(&mine.iter().map(|a| a.to_bytes()).collect::<Vec<_>>());
            let b = Block {
                height: blocks.len() as u64 + 1,
                block_id: trace_id(&session).to_vec(),
                session_id: session,
                seqs: mine.iter().map(|a| a.seq).collect(),
                root: root.to_vec(),
                prev_root: prev_root.clone(),
                cap_profile_hash: vec![9; 32],
                closed_at_ms: 1_700_000_000_100,
            };
            prev_root = root.to_vec();
            blocks.push(b);
        }
    }
    let signatures = blocks
        .iter()
        .map(|b| BlockSignature {
            height: b.height,
            signature: g.sign(&b.signing_digest()),
            signers: vec!["k1".into(), "k3".into()],
            signed_at_ms: 1_700_000_000_200,
        })
        .collect();
    Package {
        manifest: PackageManifest {
            format: PACKAGE_FORMAT.into(),
            kernel_id: "k1".into(),
            group_public_key: hex::encode(g.key()),
            ales: 40,
            blocks: blocks.len() as u64,
            exported_at_ms: 1_700_000_000_300,
        },
        ales: ales.iter().map(Ale::to_bytes).collect(),
        blocks,
        signatures,
        group_public_key: g.key(),
    }
}

fn write(p: &Package, dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let [m, a, b, s, k] = p.to_files().unwrap();
    for (name, bytes) in [
        (files::MANIFEST, m),
        (files::ALES, a),
        (files::BLOCKS, b),
        (files::SIGNATURES, s),
        (files::GROUP_KEY, k),
    ] {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

fn flip(dir: &Path, file: &str, needle: &[u8], at: usize) {
    let mut bytes = std::fs::read(dir.join(file)).unwrap();
    let pos = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap();
    bytes[pos + at] ^= 0x01;
    std::fs::write(dir.join(file), bytes).unwrap();
}

fn failed_checks(stdout: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(stdout).unwrap();
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == false)
        .map(|c| c["check"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn verify_audit_exit_codes_and_named_failures() {
    let g = Group::new();
    let p = package(&g);
    let root = tempfile::tempdir().unwrap();
    let good = root.path().join("good");
    write(&p, &good);
    let key = hex::encode(g.key());

    let (code, out) = verify(&[
        "audit",
        "--package",
        good.to_str().unwrap(),
        "--ale",
        "17",
        "--group-public-key",
        &key,
        "--json",
    ]);
    assert_eq!(code, 0, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["verified"], true);
    assert_eq!(v["inclusion"]["seq"], 17);
    assert_eq!(
        v["inclusion"]["block_id"],
        hex::encode(trace_id("session-2"))
    );
    let (code, text) = verify(&["audit", "--package", good.to_str().unwrap(), "--ale", "17"]);
    assert_eq!(code, 0);
    assert!(
        text.contains("verified") && text.contains("ale.inclusion"),
        "{text}"
    );

    let case = |name: &str, f: &dyn Fn(&Path)| -> Vec<String> {
        let d = root.path().join(name);
        write(&p, &d);
        f(&d);
        let (code, out) = verify(&["audit", "--package", d.to_str().unwrap(), "--json"]);
        assert_eq!(code, 1, "{name}: {out}");
        failed_checks(&out)
    };
    let ale = case("ale", &|d| {
        flip(d, files::ALES, b"soos.governance.cedar.decision", 2)
    });
    assert!(ale.contains(&"ales.chain".to_string()), "{ale:?}");
    let block = case("block", &|d| flip(d, files::BLOCKS, &p.blocks[3].root, 0));
    assert!(
        block.contains(&"blocks.merkle_root".to_string()),
        "{block:?}"
    );
    let sig = case("sig", &|d| {
        flip(d, files::SIGNATURES, &p.signatures[4].signature, 63)
    });
    assert_eq!(sig, vec!["blocks.signature".to_string()]);
    let removed = case("removed", &|d| {
        let mut q = p.clone();
        q.ales.remove(9);
        q.manifest.ales = 39;
        write(&q, d);
    });
    assert!(removed.contains(&"ales.chain".to_string()), "{removed:?}");
    let unsigned = case("unsigned", &|d| {
        let mut q = p.clone();
        q.signatures.pop();
        write(&q, d);
    });
    assert_eq!(unsigned, vec!["blocks.signature".to_string()]);
    let junk = case("junk", &|d| {
        std::fs::write(d.join(files::ALES), b"\xbf\xff\x00").unwrap()
    });
    assert_eq!(junk, vec!["package.parse".to_string()]);

    // Another group's key pinned.
    let other = hex::encode(Group::new().key());
    let (code, out) = verify(&[
        "audit",
        "--package",
        good.to_str().unwrap(),
        "--group-public-key",
        &other,
        "--json",
    ]);
    assert_eq!(code, 1);
    assert!(failed_checks(&out).contains(&"blocks.signature".to_string()));

    // Missing package: usage / I/O.
    let (code, _) = verify(&["audit", "--package", "/nonexistent/package"]);
    assert_eq!(code, 2);
    let partial = root.path().join("partial");
    std::fs::create_dir_all(&partial).unwrap();
    let (code, _) = verify(&["audit", "--package", partial.to_str().unwrap()]);
    assert_eq!(code, 2);
}
