//! Two clusters booting at once in one process (the harness's shared resources): every
//! kernel of both reaches `serving`. This used to leave a kernel in `booting` now and then:
//! two swtpm start-ups could pick the same port, and two kernels then shared one swtpm,
//! which serves one connection at a time.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test code: any failure should stop the run loudly"
)]

use crate::common;

use common::*;
use std::time::Duration;
use wire::msg::KernelState;

#[test]
fn two_clusters_boot_side_by_side() {
    for round in 0..3 {
        // Two test threads, as two #[tokio::test]s of one binary run.
        let start = || {
            std::thread::spawn(|| {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .unwrap();
                let c = rt.block_on(async {
                    let c = Cluster::start(Options::default()).await;
                    c.settle(Duration::from_secs(120)).await;
                    c
                });
                (rt, c)
            })
        };
        let (ha, hb) = (start(), start());
        let ((rta, a), (rtb, b)) = (ha.join().unwrap(), hb.join().unwrap());
        for c in [&a, &b] {
            for n in &c.nodes {
                let h = n.kernel.health();
                assert_eq!(
                    h.state,
                    KernelState::Serving,
                    "round {round}, {}: {h:?}",
                    n.id
                );
            }
            // Each kernel quotes its own TPM: the AKs differ across the clusters.
        }
        let tpms = |c: &Cluster| {
            c.nodes
                .iter()
                .map(|n| n.cfg.tpm_tcti.clone().unwrap())
                .collect::<Vec<_>>()
        };
        let (ta, tb) = (tpms(&a), tpms(&b));
        let mut all: Vec<&String> = ta.iter().chain(tb.iter()).collect();
        all.sort();
        all.dedup();
        assert_eq!(
            all.len(),
            6,
            "every kernel has its own swtpm: {ta:?} {tb:?}"
        );
        rta.block_on(async move { drop(a) });
        rtb.block_on(async move { drop(b) });
        drop((rta, rtb));
    }
}
