//! `measure snp` against `sev-snp-measure` 0.0.13, whole process to whole process, same
//! inputs, same run: 64 vCPUs, EPYC-Milan, with kernel/initrd/cmdline hashes on the AmdSev
//! OVMF (the build with a kernel-hashes section). Both outputs must be identical or the bench
//! fails. Prints `{"figures": [...]}` as its last line with `--json`.
//!
//! Inputs: the 4 KiB AmdSev firmware suffix of `sev-snp-measure`'s tests, a kernel and an
//! initrd of the image's sizes (8 MiB, 12 MiB; pseudo-random bytes: the digest only hashes
//! them). Timing: median of 15 alternating runs of each command after 2 warm-ups.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "benchmark harness: a failure aborts the run"
)]

#[path = "../tests/common/peer.rs"]
#[allow(dead_code, reason = "shared with the tests, which use all of it")]
mod peer;

use serde_json::json;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const RUNS: usize = 15;

fn time(program: &Path, prefix: &[&str], args: &[String]) -> (Duration, String) {
    let start = Instant::now();
    let out = Command::new(program)
        .args(prefix)
        .args(args)
        .output()
        .unwrap();
    let elapsed = start.elapsed();
    assert!(
        out.status.success(),
        "{} failed: {}",
        program.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    (elapsed, String::from_utf8_lossy(&out.stdout).into_owned())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn figure(
    name: &str,
    value: f64,
    unit: &str,
    peer: Option<&str>,
    ratio: Option<f64>,
) -> serde_json::Value {
    json!({"name": name, "value": (value * 1000.0).round() / 1000.0, "unit": unit, "peer": peer,
           "ratio": ratio.map(|r| (r * 100.0).round() / 100.0)})
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let filter = args.iter().find(|a| !a.starts_with("--")).cloned();
    if filter
        .as_deref()
        .is_some_and(|f| !"measure_vs_sev_snp_measure_speedup".contains(f))
    {
        if args.iter().any(|a| a == "--json") {
            println!("{}", json!({"figures": []}));
        }
        return;
    }
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or(target);
    let peer_bin =
        peer::sev_snp_measure(&target.join("peer-tools")).unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap();
    let kernel = dir.path().join("vmlinuz");
    let initrd = dir.path().join("initrd.img");
    std::fs::write(&kernel, peer::noise(8 << 20, 7)).unwrap();
    std::fs::write(&initrd, peer::noise(12 << 20, 8)).unwrap();
    let ovmf = format!(
        "{}/../ovmf/tests/data/ovmf_AmdSev_suffix.bin",
        env!("CARGO_MANIFEST_DIR")
    );
    let a: Vec<String> = [
        "--mode",
        "snp",
        "--vcpus",
        "64",
        "--vcpu-type",
        "EPYC-Milan",
        "--ovmf",
        &ovmf,
        "--kernel",
        kernel.to_str().unwrap(),
        "--initrd",
        initrd.to_str().unwrap(),
        "--append",
        "console=ttyS0 panic=-1",
        "--guest-features",
        "0x1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let measure = Path::new(env!("CARGO_BIN_EXE_measure"));
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for i in 0..RUNS + 2 {
        let (t_peer, out_peer) = time(&peer_bin, &[], &a);
        let (t_ours, out_ours) = time(measure, &["snp"], &a);
        assert_eq!(out_ours, out_peer, "measure and sev-snp-measure disagree");
        if i >= 2 {
            ours.push(t_ours);
            theirs.push(t_peer);
        }
    }
    let (ours, theirs) = (median(ours), median(theirs));
    let speedup = theirs.as_secs_f64() / ours.as_secs_f64();
    let figs = vec![
        figure(
            "measure_vs_sev_snp_measure_speedup",
            speedup,
            "x",
            Some("sev-snp-measure 0.0.13, same inputs, same run"),
            Some(speedup),
        ),
        figure(
            "measure_snp_64vcpu_hashes_ms",
            ours.as_secs_f64() * 1000.0,
            "ms",
            None,
            None,
        ),
        figure(
            "sev_snp_measure_64vcpu_hashes_ms",
            theirs.as_secs_f64() * 1000.0,
            "ms",
            None,
            None,
        ),
    ];
    for f in &figs {
        eprintln!(
            "{:<40} {:>10} {}",
            f["name"].as_str().unwrap_or(""),
            f["value"],
            f["unit"].as_str().unwrap_or("")
        );
    }
    if args.iter().any(|a| a == "--json") {
        println!("{}", json!({ "figures": figs }));
    }
}
