//! GPU verification throughput on the one fully offline-verifiable vector (go-nvattest-tools
//! h100-550.90.07: report, 5-certificate device chain, driver and VBIOS RIMs).
//!
//! - `uncached`: everything from bytes each time: SPDM framing, device chain (4 ECDSA P-384
//!   links), report signature, both RIMs (XML parse, C14N 1.1, SHA-384 digest, XML signature,
//!   3-link RIM chain each) and the measurement comparison (13 ECDSA verifications).
//! - `cached`: a [`GpuVerifier`] reused across reports, as a verifier service would: device
//!   chain and RIMs verified once per validity window; per report, framing, FWID, signature,
//!   nonce, policy and comparison.
//!
//! `cargo bench -p gpu-attest --bench gpu -- --json` prints `{"figures": [...]}` (the format of
//! `cargo xtask bench`): `gpu_verifications_per_s` (the uncached figure, the conservative one),
//! `gpu_verifications_per_s_cached` with its ratio to uncached in the same run, and
//! `nv_local_gpu_verifier_speedup` from `benches/peer/run.sh` when its prerequisites (root,
//! libfaketime, python3-venv, network once for pip) are there.

use gpu_attest::{appraise, GpuNonce, GpuPolicy, GpuVerifier};
use std::time::{Duration, Instant};

/// 2025-06-01T00:00:00Z, inside every certificate's validity window.
const NOW: i64 = 1_748_736_000;
const NONCE: [u8; 32] = [
    0x93, 0x1d, 0x8d, 0xd0, 0xad, 0xd2, 0x03, 0xac, 0x3d, 0x8b, 0x4f, 0xbd, 0xe7, 0x5e, 0x11, 0x52,
    0x78, 0xee, 0xfc, 0xdc, 0xea, 0xc5, 0xb8, 0x76, 0x71, 0xa7, 0x48, 0xf3, 0x23, 0x64, 0xdf, 0xcb,
];

fn vector(rel: &str) -> Result<Vec<u8>, String> {
    let path = format!("{}/tests/vectors/{rel}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).map_err(|e| format!("vector `{path}` is missing: {e}"))
}

/// Runs `f` for at least `budget`, returns verifications per second.
fn rate(budget: Duration, mut f: impl FnMut() -> bool) -> Result<f64, String> {
    for _ in 0..3 {
        if !f() {
            return Err("the vector did not verify".into());
        }
    }
    let start = Instant::now();
    let mut n = 0u32;
    while start.elapsed() < budget || n < 10 {
        if !f() {
            return Err("the vector did not verify".into());
        }
        n = n.saturating_add(1);
    }
    Ok(f64::from(n) / start.elapsed().as_secs_f64())
}

fn main() -> Result<(), String> {
    let json = std::env::args().any(|a| a == "--json");
    let report = vector("h100-550.90.07/report.bin")?;
    let chain = String::from_utf8(vector("h100-550.90.07/cert_chain.pem")?)
        .map_err(|_| "chain is not utf-8".to_owned())?;
    let rims = vec![
        vector("h100-550.90.07/NV_GPU_DRIVER_GH100_550.90.07.xml")?,
        vector("h100-550.90.07/NV_GPU_VBIOS_1010_0200_882_96009F0001.xml")?,
    ];
    let nonce = GpuNonce(NONCE);
    let policy = GpuPolicy::default();
    let budget = Duration::from_secs(3);

    let uncached = rate(budget, || {
        appraise(&report, &chain, &nonce, &rims, &policy, NOW).affirming()
    })?;
    let mut verifier = GpuVerifier::new(policy.clone());
    let cached = rate(budget, || {
        verifier
            .appraise(&report, &chain, &nonce, &rims, NOW)
            .affirming()
    })?;
    let mut figures = vec![
        format!(
            "{{\"name\":\"gpu_verifications_per_s\",\"value\":{uncached:.1},\"unit\":\"verifications/s\",\"peer\":null,\"ratio\":null}}"
        ),
        format!(
            "{{\"name\":\"gpu_verifications_per_s_cached\",\"value\":{cached:.1},\"unit\":\"verifications/s\",\"peer\":\"uncached, same run\",\"ratio\":{:.2}}}",
            cached / uncached
        ),
    ];
    eprintln!("gpu_verifications_per_s (uncached: chain + rims + report) {uncached:.1}/s");
    eprintln!("gpu_verifications_per_s_cached (chain and rims reused)    {cached:.1}/s");
    match peer() {
        Ok(line) => {
            eprintln!("peer: {line}");
            if let Some(ratio) = number_after(&line, "\"nv_local_gpu_verifier_speedup\":") {
                figures.push(format!(
                    "{{\"name\":\"nv_local_gpu_verifier_speedup\",\"value\":{ratio:.2},\"unit\":\"x\",\"peer\":\"nv-local-gpu-verifier 2.7.3, whole process, offline\",\"ratio\":{ratio:.2}}}"
                ));
            }
        }
        Err(why) => eprintln!("nv_local_gpu_verifier_speedup not measured: {why}"),
    }
    if json {
        println!("{{\"figures\":[{}]}}", figures.join(","));
    }
    Ok(())
}

/// Reads the number following `key` in a JSON line.
fn number_after(line: &str, key: &str) -> Option<f64> {
    let rest = line.get(line.find(key)?.checked_add(key.len())?..)?;
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == ' '))
        .unwrap_or(rest.len());
    rest.get(..end)?.trim().parse().ok()
}

/// The whole-process comparison with nv-local-gpu-verifier (benches/peer/run.sh): needs root
/// for `unshare -n`, libfaketime, python3-venv and, the first time, network for pip.
fn peer() -> Result<String, String> {
    if std::env::var_os("GPU_PEER_SKIP").is_some() {
        return Err("GPU_PEER_SKIP is set".into());
    }
    let have = |cmd: &str, arg: &str| {
        std::process::Command::new(cmd)
            .arg(arg)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok()
    };
    if !have("faketime", "--version") || !have("unshare", "--version") {
        return Err("needs `faketime` and `unshare` (apt-get install faketime util-linux)".into());
    }
    let script = format!("{}/benches/peer/run.sh", env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new("sh")
        .arg(&script)
        .env("RUNS", "9")
        .output()
        .map_err(|e| format!("running {script}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{script} failed: {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or_default()
        ));
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .rev()
        .find(|l| l.contains("nv_local_gpu_verifier_speedup"))
        .map(str::to_owned)
        .ok_or_else(|| "the comparison printed no speedup".into())
}
