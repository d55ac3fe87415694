//! KEE-1 P4 / KEE-2 D4 catalog authority on a real three-kernel cluster (swtpm, sockets,
//! SQLite): a 2-of-3 publisher-signed update is staged through the host proxy, activates at
//! its effective date and not before, and every later decision ALE carries the new
//! `cap_profile_hash`; one signature, a replayed or older version, a foreign fleet and a
//! foreign publisher are refused with a reason and an ALE, and change nothing. (A kernel with
//! no pinned publishers refusing every update is a unit test of `enclave::catalog`: one
//! cluster per test binary, see `tests/tests/e2e/gar.rs`.)
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test code: a failed expectation is a test failure"
)]

use crate::common;

use common::*;
use enclave::catalog::{signed_message, CatalogUpdate, PublisherSignature, SignedCatalogUpdate};
use enclave::kernel::events;
use ring::signature::{Ed25519KeyPair, KeyPair};
use std::time::Duration;
use wire::msg::{CatalogUpdateParams, Decision, ErrorCode, EvaluateParams, Request, Response};

const WAIT: Duration = Duration::from_secs(60);

/// The new CAP profile: reading now also needs `context.approved`.
const CAP_V2: &str = r#"
@id("relief-read-approved")
permit(principal == Agent::"planner", action == Action::"read", resource)
when { context.purpose == "relief" && context has approved && context.approved };
@id("no-delete")
forbid(principal, action == Action::"delete", resource);
"#;

fn key() -> Ed25519KeyPair {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).unwrap();
    Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap()
}

fn public(k: &Ed25519KeyPair) -> [u8; 32] {
    k.public_key().as_ref().try_into().unwrap()
}

fn rfc3339(unix_ms: u64) -> String {
    // Whole seconds, UTC, from the civil-from-days algorithm (no time crate in this test).
    let secs = unix_ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn update(fleet: &str, version: u64, effective_ms: u64, by: &[&Ed25519KeyPair]) -> Vec<u8> {
    let update = wire::encode(&CatalogUpdate {
        fleet_id: fleet.into(),
        version,
        effective_date: rfc3339(effective_ms),
        max_propagation_window_seconds: 60,
        cap_profile: CAP_V2.into(),
    })
    .unwrap();
    let message = signed_message(&update);
    SignedCatalogUpdate {
        signatures: by
            .iter()
            .map(|k| PublisherSignature {
                public_key: k.public_key().as_ref().to_vec(),
                signature: k.sign(&message).as_ref().to_vec(),
            })
            .collect(),
        update,
    }
    .encode()
    .unwrap()
}

async fn stage(n: &Node, signed: Vec<u8>) -> Response {
    call(
        &n.public,
        &Request::CatalogUpdate(CatalogUpdateParams { signed }),
    )
    .await
}

async fn read_census(n: &Node, approved: bool) -> Decision {
    let context = if approved {
        r#"{"purpose":"relief","approved":true}"#
    } else {
        r#"{"purpose":"relief"}"#
    };
    match call(
        &n.public,
        &Request::Evaluate(EvaluateParams {
            principal: "Agent::\"planner\"".into(),
            action: "Action::\"read\"".into(),
            resource: "Dataset::\"census\"".into(),
            context_json: context.into(),
            entities_json: String::new(),
            session_id: "catalog".into(),
            agent_xpid: String::new(),
        }),
    )
    .await
    {
        Response::Decision(d) => d.decision,
        other => panic!("evaluate: {other:?}"),
    }
}

/// The `cap_profile_hash` of every decision ALE of `n`, in order.
fn decision_hashes(n: &Node) -> Vec<Vec<u8>> {
    #[derive(serde::Deserialize)]
    struct Body {
        #[serde(with = "serde_bytes")]
        cap_profile_hash: Vec<u8>,
    }
    let log = enclave::audit::AuditLog::open(&n.state_dir.join("audit.db")).unwrap();
    log.verify_chain().unwrap();
    log.events_of_kind(events::DECISION)
        .unwrap()
        .iter()
        .map(|a| wire::decode::<Body>(&a.body).unwrap().cap_profile_hash)
        .collect()
}

fn audit_count(n: &Node, kind: &str) -> usize {
    enclave::audit::AuditLog::open(&n.state_dir.join("audit.db"))
        .unwrap()
        .events_of_kind(kind)
        .unwrap()
        .len()
}

fn refusal(r: Response) -> String {
    match r {
        Response::Error(e) => {
            assert_eq!(e.code, ErrorCode::BadRequest, "{e:?}");
            e.message
        }
        other => panic!("a bad catalog update was accepted: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_two_of_three_update_activates_at_its_effective_date_and_bad_ones_change_nothing() {
    let (a, b, c, stranger) = (key(), key(), key(), key());
    let cl = Cluster::start(Options {
        catalog_publishers: vec![public(&a), public(&b), public(&c)],
        ..Options::default()
    })
    .await;
    cl.settle(WAIT).await;
    let k1 = cl.node("k1");
    assert_eq!(read_census(k1, false).await, Decision::Allow);
    let boot_hash = decision_hashes(k1)[0].clone();

    // Bad updates: refused with the failed check, recorded, nothing staged.
    let soon = attestation::now_ms() + 4_000;
    let one = refusal(stage(k1, update("test-fleet", 1, soon, &[&a])).await);
    assert!(
        one.contains("1 valid publisher signatures, 2 are required"),
        "{one}"
    );
    let foreign = refusal(stage(k1, update("test-fleet", 1, soon, &[&a, &stranger])).await);
    assert!(foreign.contains("1 valid"), "{foreign}");
    let fleet = refusal(stage(k1, update("other-fleet", 1, soon, &[&a, &b])).await);
    assert!(fleet.contains("fleet `other-fleet`"), "{fleet}");
    let mut garbage = update("test-fleet", 1, soon, &[&a, &b]);
    garbage.truncate(garbage.len() / 2);
    let truncated = refusal(stage(k1, garbage).await);
    assert!(truncated.contains("malformed"), "{truncated}");
    assert_eq!(audit_count(k1, events::CATALOG_REFUSED), 4);

    // A good update: staged now (phase 1), acknowledged with the new hash.
    let good = update("test-fleet", 1, soon, &[&b, &c]);
    let staged = match stage(k1, good.clone()).await {
        Response::CatalogStaged(s) => s,
        other => panic!("a 2-of-3 update was refused: {other:?}"),
    };
    assert_eq!(staged.version, 1);
    assert_eq!(staged.effective_at_ms, soon / 1000 * 1000);
    assert_eq!(staged.publishers.len(), 2);
    assert_ne!(staged.cap_profile_hash, boot_hash);
    // Replay of the same version, while staged: refused.
    let replay = refusal(stage(k1, good.clone()).await);
    assert!(replay.contains("rollback or replay"), "{replay}");

    // Never before the effective date: the old set still decides.
    while attestation::now_ms() + 500 < staged.effective_at_ms {
        assert_eq!(read_census(k1, false).await, Decision::Allow);
        assert_eq!(audit_count(k1, events::CATALOG_ACTIVATED), 0);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // At the effective date: activated atomically; the new set decides.
    cl.wait_for("catalog v1 active on k1", WAIT, |cl| {
        audit_count(cl.node("k1"), events::CATALOG_ACTIVATED) == 1
    })
    .await;
    let activated_at = attestation::now_ms();
    assert!(activated_at >= staged.effective_at_ms);
    assert_eq!(read_census(k1, false).await, Decision::Deny);
    assert_eq!(read_census(k1, true).await, Decision::Allow);
    let hashes = decision_hashes(k1);
    assert_eq!(hashes.last().unwrap(), &staged.cap_profile_hash);
    assert!(hashes.iter().filter(|h| **h == boot_hash).count() >= 2);
    // The other kernels were not sent the update: they still run the boot set.
    assert_eq!(read_census(cl.node("k2"), false).await, Decision::Allow);

    // After activation: the same update again, or an older version, is a rollback.
    let again = refusal(stage(k1, good).await);
    assert!(again.contains("not above 1"), "{again}");
    let older = refusal(stage(k1, update("test-fleet", 0, soon, &[&a, &c])).await);
    assert!(older.contains("rollback"), "{older}");
    assert_eq!(read_census(k1, true).await, Decision::Allow);
    assert_eq!(audit_count(k1, events::CATALOG_STAGED), 1);
}
