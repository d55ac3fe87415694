//! Offline appraisal throughput per evidence kind, on real vectors, with the endorsement chain
//! cached and uncached.
//!
//! * `cargo bench -p attestation --bench appraisal` — criterion statistics for every case.
//! * `cargo bench -p attestation --bench appraisal -- --json [NAME]` (what `cargo xtask bench`
//!   runs) — timed loops on one thread, printing `{"figures": [...]}`:
//!   `snp_appraisals_per_s_cached` / `_uncached`, `tdx_appraisals_per_s_cached` / `_uncached`,
//!   `tpm_appraisals_per_s`, and `snpguest_speedup`: whole-process time of `snpguest`
//!   (`verify certs` + `verify attestation`, its two commands for the same checks) over ours
//!   (`verify snp --report --vek --ca`) on the same Milan vector, in the same run. The peer
//!   binary is looked up in `SNPGUEST` or `target/peer-tools/bin/snpguest` (xtask installs it).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::cast_possible_truncation,
    clippy::cast_precision_loss,
    reason = "bench code: any failure should stop the run loudly"
)]

use attestation::reference::{SnpReference, TdxReference};
use attestation::snp::endorser::{verify_vek, Product};
use attestation::snp::{verify_snp, UnverifiedSnpReport};
use attestation::tdx::{Collateral, TdxVerifier};
use attestation::verdict::{appraise_snp, appraise_tdx};
use criterion::Criterion;
use serde_json::json;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn vector(rel: &str) -> Vec<u8> {
    let p = root().join("tests/vectors").join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("vector `{}`: {e}", p.display()))
}

struct Inputs {
    snp_report: Vec<u8>,
    snp_vcek: Vec<u8>,
    tdx_quote: Vec<u8>,
    tdx_collateral: Collateral,
    tdx_now: u64,
    tpm: (
        Vec<u8>,
        Vec<u8>,
        attestation::tpm::AkPublic,
        Vec<attestation::tpm::PcrValue>,
        Vec<u8>,
    ),
}

fn inputs() -> Inputs {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let json: serde_json::Value =
        serde_json::from_slice(&vector("tpm/trustee-tpm-evidence/tpm_evidence.json")).unwrap();
    let q = &json["tpm_quote"];
    let attest = b64.decode(q["message"].as_str().unwrap()).unwrap();
    let signature = b64.decode(q["signature"].as_str().unwrap()).unwrap();
    let ak = attestation::tpm::AkPublic::from_rsa_spki_der(
        &b64.decode(json["ak_public"].as_str().unwrap()).unwrap(),
    )
    .unwrap();
    let pcrs = q["pcrs"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, p)| attestation::tpm::PcrValue {
            index: i as u8,
            digest: hex::decode(p.as_str().unwrap()).unwrap(),
        })
        .collect();
    let extra = attestation::tpm::UnverifiedQuote::parse(&attest)
        .unwrap()
        .extra_data()
        .to_vec();
    Inputs {
        snp_report: vector("snp/trustee-milan-vcek/report.bin"),
        snp_vcek: vector("snp/trustee-milan-vcek/vcek.der"),
        tdx_quote: vector("tdx/dcap-qvl-uptodate/quote.bin"),
        tdx_collateral: Collateral::from_json(&vector("tdx/dcap-qvl-uptodate/collateral.json"))
            .unwrap(),
        tdx_now: attestation::time::rfc3339_to_unix("2025-06-20T00:00:00Z").unwrap() as u64,
        tpm: (attest, signature, ak, pcrs, extra),
    }
}

fn snp_uncached(i: &Inputs) -> bool {
    let r = verify_snp(&i.snp_report, &i.snp_vcek, Some(Product::Milan)).unwrap();
    appraise_snp(&r, &SnpReference::default(), None).affirming()
}

fn snp_cached(i: &Inputs, vek: &attestation::snp::VerifiedVek) -> bool {
    let r = UnverifiedSnpReport::parse(&i.snp_report)
        .unwrap()
        .verify_with(vek)
        .unwrap();
    appraise_snp(&r, &SnpReference::default(), None).affirming()
}

fn tdx_run(i: &Inputs, v: &TdxVerifier, cached: bool) -> bool {
    let q = if cached {
        v.verify(&i.tdx_quote, &i.tdx_collateral, i.tdx_now)
    } else {
        v.verify_uncached(&i.tdx_quote, &i.tdx_collateral, i.tdx_now)
    }
    .unwrap();
    appraise_tdx(&q, &TdxReference::default(), None).affirming()
}

fn tpm_run(i: &Inputs) -> usize {
    let (a, s, ak, pcrs, extra) = &i.tpm;
    attestation::tpm::verify_quote_with_key(a, s, ak, pcrs, extra)
        .unwrap()
        .pcrs()
        .len()
}

/// Operations per second on one thread: median of 5 runs of about 400 ms each.
fn per_s(mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut calib = 0u64;
    while start.elapsed() < Duration::from_millis(100) {
        f();
        calib += 1;
    }
    let per_run = (calib * 4).max(5);
    let mut rates: Vec<f64> = (0..5)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..per_run {
                f();
            }
            per_run as f64 / t.elapsed().as_secs_f64()
        })
        .collect();
    rates.sort_by(|a, b| a.partial_cmp(b).unwrap());
    rates[2]
}

fn figure(
    name: &str,
    value: f64,
    unit: &str,
    peer: Option<&str>,
    ratio: Option<f64>,
) -> serde_json::Value {
    json!({"name": name, "value": (value * 10.0).round() / 10.0, "unit": unit, "peer": peer,
           "ratio": ratio.map(|r| (r * 100.0).round() / 100.0)})
}

fn workspace_target() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("../target"))
}

/// Median wall time of `runs` executions of `cmd`, each required to exit with `ok`.
fn process_ms(runs: usize, mut cmd: impl FnMut() -> std::process::Command, ok: i32) -> f64 {
    let mut t: Vec<f64> = (0..runs)
        .map(|_| {
            let s = Instant::now();
            let out = cmd().output().unwrap();
            assert_eq!(
                out.status.code(),
                Some(ok),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            s.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    t.sort_by(|a, b| a.partial_cmp(b).unwrap());
    t[runs / 2]
}

/// Ours vs snpguest on the trustee Milan vector, whole process each time.
fn snpguest_speedup() -> Option<(f64, f64)> {
    let target = workspace_target();
    let peer = std::env::var_os("SNPGUEST")
        .map(PathBuf::from)
        .unwrap_or_else(|| target.join("peer-tools/bin/snpguest"));
    let ours = ["release", "debug"]
        .iter()
        .map(|p| target.join(p).join("verify"))
        .find(|p| p.exists());
    let (Some(ours), true) = (ours, peer.exists()) else {
        eprintln!(
            "snpguest_speedup: needs {} (cargo install snpguest) and a built `verify` binary",
            peer.display()
        );
        return None;
    };
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    std::fs::create_dir(&certs).unwrap();
    let pem = |der: &[u8], label: &str| {
        use base64::Engine as _;
        let b = base64::engine::general_purpose::STANDARD.encode(der);
        let body: Vec<String> = b
            .as_bytes()
            .chunks(64)
            .map(|c| String::from_utf8(c.to_vec()).unwrap())
            .collect();
        format!(
            "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
            body.join("\n")
        )
    };
    std::fs::write(
        certs.join("vcek.pem"),
        pem(&vector("snp/trustee-milan-vcek/vcek.der"), "CERTIFICATE"),
    )
    .unwrap();
    std::fs::copy(
        root().join("tests/vectors/snp/amd-roots/milan_ark.pem"),
        certs.join("ark.pem"),
    )
    .unwrap();
    std::fs::copy(
        root().join("tests/vectors/snp/amd-roots/milan_ask.pem"),
        certs.join("ask.pem"),
    )
    .unwrap();
    let report = root().join("tests/vectors/snp/trustee-milan-vcek/report.bin");
    let ca = dir.path().join("ca.pem");
    let mut ca_text = std::fs::read(certs.join("ask.pem")).unwrap();
    ca_text.extend(std::fs::read(certs.join("ark.pem")).unwrap());
    std::fs::write(&ca, ca_text).unwrap();
    let vcek = root().join("tests/vectors/snp/trustee-milan-vcek/vcek.der");
    // The report's guest policy is fine for this vector; exit code 0 = affirming.
    let ours_ms = process_ms(
        21,
        || {
            let mut c = std::process::Command::new(&ours);
            c.args(["snp", "--report"])
                .arg(&report)
                .arg("--vek")
                .arg(&vcek)
                .arg("--ca")
                .arg(&ca);
            c
        },
        0,
    );
    // snpguest needs two invocations for the same checks (chain, then report); each is
    // timed on its own (no shell in between) and the medians are added.
    let peer_cmd = |args: &[&std::ffi::OsStr]| {
        let mut c = std::process::Command::new(&peer);
        c.args(args);
        c
    };
    let certs_ms = process_ms(
        21,
        || peer_cmd(&["verify".as_ref(), "certs".as_ref(), certs.as_os_str()]),
        0,
    );
    let report_ms = process_ms(
        21,
        || {
            peer_cmd(&[
                "verify".as_ref(),
                "attestation".as_ref(),
                "-p".as_ref(),
                "milan".as_ref(),
                certs.as_os_str(),
                report.as_os_str(),
            ])
        },
        0,
    );
    let theirs_ms = certs_ms + report_ms;
    Some((ours_ms, theirs_ms))
}

fn figures(filter: Option<&str>) -> Vec<serde_json::Value> {
    let want = |n: &str| filter.is_none_or(|f| n.contains(f));
    let i = inputs();
    let mut out = Vec::new();
    if want("snp_appraisals") {
        let vek = verify_vek(
            &i.snp_vcek,
            Some(Product::Milan),
            attestation::snp::SigningKey::Vcek,
        )
        .unwrap();
        let cached = per_s(|| {
            black_box(snp_cached(&i, &vek));
        });
        let uncached = per_s(|| {
            black_box(snp_uncached(&i));
        });
        out.push(figure(
            "snp_appraisals_per_s_cached",
            cached,
            "appraisals/s/core",
            Some("goal 10000/s/core"),
            Some(cached / 10_000.0),
        ));
        out.push(figure(
            "snp_appraisals_per_s_uncached",
            uncached,
            "appraisals/s/core",
            None,
            None,
        ));
    }
    if want("tdx_appraisals") {
        let v = TdxVerifier::default();
        let cached = per_s(|| {
            black_box(tdx_run(&i, &v, true));
        });
        let uncached = per_s(|| {
            black_box(tdx_run(&i, &v, false));
        });
        out.push(figure(
            "tdx_appraisals_per_s_cached",
            cached,
            "appraisals/s/core",
            None,
            None,
        ));
        out.push(figure(
            "tdx_appraisals_per_s_uncached",
            uncached,
            "appraisals/s/core",
            None,
            None,
        ));
    }
    if want("tpm_appraisals") {
        let r = per_s(|| {
            black_box(tpm_run(&i));
        });
        out.push(figure(
            "tpm_appraisals_per_s",
            r,
            "appraisals/s/core",
            None,
            None,
        ));
    }
    if want("snpguest") {
        if let Some((ours, theirs)) = snpguest_speedup() {
            out.push(figure("snpguest_ms_per_process", theirs, "ms", None, None));
            out.push(figure("verify_snp_ms_per_process", ours, "ms", None, None));
            out.push(figure(
                "snpguest_speedup",
                theirs / ours,
                "x",
                Some("snpguest verify certs + verify attestation"),
                Some(theirs / ours),
            ));
        }
    }
    out
}

fn criterion_benches() {
    let i = inputs();
    let vek = verify_vek(
        &i.snp_vcek,
        Some(Product::Milan),
        attestation::snp::SigningKey::Vcek,
    )
    .unwrap();
    let tdx = TdxVerifier::default();
    let mut c = Criterion::default().configure_from_args();
    c.bench_function("snp_appraisal_cached", |b| b.iter(|| snp_cached(&i, &vek)));
    c.bench_function("snp_appraisal_uncached", |b| b.iter(|| snp_uncached(&i)));
    c.bench_function("tdx_appraisal_cached", |b| {
        b.iter(|| tdx_run(&i, &tdx, true))
    });
    c.bench_function("tdx_appraisal_uncached", |b| {
        b.iter(|| tdx_run(&i, &tdx, false))
    });
    c.bench_function("tpm_appraisal", |b| b.iter(|| tpm_run(&i)));
    c.final_summary();
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--json" || a == "--figures") {
        let filter = args
            .iter()
            .find(|a| !a.starts_with("--"))
            .map(String::as_str);
        let figs = figures(filter);
        for f in &figs {
            eprintln!(
                "{:<34} {:>12} {}",
                f["name"].as_str().unwrap_or(""),
                f["value"],
                f["unit"].as_str().unwrap_or("")
            );
        }
        if args.iter().any(|a| a == "--json") {
            println!("{}", json!({ "figures": figs }));
        }
        let _ = Path::new(".");
    } else {
        criterion_benches();
    }
}
