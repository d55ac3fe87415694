//! Opt-in: checks the AmdSev OVMF that `image ovmf-amdsev` builds (slow, so not part of
//! `cargo xtask test`: this target has `test = false` and runs only when named):
//!
//! ```sh
//! nice -n 10 cargo run -p image -- ovmf-amdsev      # once; cached under target/image-cache
//! cargo build -p enclave
//! cargo test -p measurements --test ovmf_amdsev_build
//! ```
//!
//! `OVMF_AMDSEV=FILE` names another build. Without the firmware (or the enclave binary the
//! image is built from) the test fails, saying what to run: it never passes vacuously.
//!
//! Checks: `measure ovmf` finds the SEV hashes table; `measure snp` with the image's kernel,
//! initrd and command line prints what `sev-snp-measure` 0.0.13 prints (stdout, status and
//! error line) in SEV, SEV-ES and SNP modes, with and without the kernel; `measure tdx`'s
//! MRTD of it equals td-shim's calculator's (osc-veritas, as in `tdx_mrtd_peer.rs`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test code: a failed expectation is a test failure"
)]

mod common;

use common::peer;
use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn firmware() -> PathBuf {
    let p = std::env::var_os("OVMF_AMDSEV").map_or_else(
        || {
            image::ovmf_amdsev::cached_path(
                &workspace().join("target/image-cache"),
                image::pins::EDK2_VERSION,
            )
        },
        PathBuf::from,
    );
    assert!(
        p.is_file(),
        "{} is missing: build it first with `nice -n 10 cargo run -p image -- ovmf-amdsev` \
         (3.5 to 6.5 minutes on 2 cores; see docs/measurements.md), or set OVMF_AMDSEV=FILE",
        p.display()
    );
    p
}

fn enclave() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let p = exe.parent().unwrap().parent().unwrap().join("enclave");
    assert!(
        p.is_file(),
        "{} is missing: `cargo build -p enclave` first",
        p.display()
    );
    p
}

struct Outcome {
    ok: bool,
    stdout: String,
    stderr_last: String,
}

fn run(program: &Path, args: &[String]) -> Outcome {
    let out = Command::new(program).args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    Outcome {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr_last: stderr.lines().last().unwrap_or("").to_string(),
    }
}

#[test]
fn the_built_amdsev_ovmf_has_the_hashes_table_and_measure_snp_equals_sev_snp_measure() {
    let fw = firmware();
    let measure = Path::new(env!("CARGO_BIN_EXE_measure"));

    // `measure ovmf` finds the hashes table (Debian's OVMF.fd has the GUID with GPA 0).
    let out = Command::new(measure)
        .args(["ovmf", "--json"])
        .arg(&fw)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let table = &v["sev_hashes_table"];
    assert!(table["gpa"].as_u64().unwrap() != 0, "hashes table: {table}");
    assert!(
        table["size"].as_u64().unwrap() >= 0x100,
        "hashes table: {table}"
    );
    eprintln!("{}: SEV hashes table {table}", fw.display());

    // The image's parts.
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("image");
    image::build(
        &image::BuildOptions {
            enclave: enclave(),
            out: img.clone(),
            cache: target.join("image-cache"),
            kernel_deb: None,
            allow_other_kernel: false,
            cmdline: image::pins::CMDLINE.to_string(),
            strip_debug: true,
        },
        &mut |line| eprintln!("image: {line}"),
    )
    .unwrap();
    let cmdline = std::fs::read_to_string(img.join("cmdline")).unwrap();
    let kernel = img.join("vmlinuz").to_str().unwrap().to_string();
    let initrd = img.join("initrd.img").to_str().unwrap().to_string();
    let fw = fw.to_str().unwrap().to_string();
    let parts = [
        "--kernel".to_string(),
        kernel,
        "--initrd".into(),
        initrd,
        "--append".into(),
        cmdline.trim_end_matches('\n').to_string(),
    ];

    let peer_bin = peer::sev_snp_measure(target).unwrap_or_else(|e| panic!("{e}"));
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<String>>();
    let mut cases: Vec<Vec<String>> = Vec::new();
    for (mode, extra) in [
        ("sev", s(&[])),
        ("seves", s(&["--vcpus", "4", "--vcpu-type", "EPYC-Milan"])),
        ("snp", s(&["--vcpus", "4", "--vcpu-type", "EPYC-Milan"])),
        ("snp", s(&["--vcpus", "1", "--vcpu-type", "EPYC-Genoa"])),
    ] {
        let mut base = s(&["--mode", mode, "--ovmf", &fw]);
        base.extend(extra);
        cases.push(base.clone());
        let mut with = base;
        with.extend(parts.iter().cloned());
        cases.push(with);
    }
    let mut agreed_with_kernel = 0;
    for args in &cases {
        let ours = run(measure, &[vec!["snp".to_string()], args.clone()].concat());
        let theirs = run(&peer_bin, args);
        let shown = args.join(" ");
        assert_eq!(
            ours.ok, theirs.ok,
            "{shown}: status (ours {}, peer {})",
            ours.stderr_last, theirs.stderr_last
        );
        assert_eq!(ours.stdout, theirs.stdout, "{shown}: stdout");
        if !ours.ok {
            assert_eq!(ours.stderr_last, theirs.stderr_last, "{shown}: error line");
        } else if args.contains(&"--kernel".to_string()) {
            agreed_with_kernel += 1;
        }
        eprintln!(
            "{}: {}",
            shown,
            if ours.ok {
                ours.stdout.trim().to_string()
            } else {
                format!("refused by both: {}", ours.stderr_last)
            }
        );
    }
    assert!(
        agreed_with_kernel >= 2,
        "the kernel hashes were measured in fewer than two modes"
    );

    // The AmdSev build carries TDVF metadata too: a second firmware for the MRTD cross-check.
    let out = Command::new(measure)
        .args(["tdx", "--page-order", "single", "--json", "--ovmf", &fw])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ours = v["mrtd"].as_str().unwrap().to_string();
    let python = peer::osc_veritas(target).unwrap_or_else(|e| panic!("{e}"));
    let script = format!(
        "import sys\nfrom {} import compute_mrtd\nprint(compute_mrtd(sys.argv[1]))",
        peer::VERITAS_MRTD_MODULE
    );
    let out = Command::new(python)
        .args(["-c", &script, &fw])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(
        ours, theirs,
        "MRTD of the AmdSev build: measure tdx vs osc-veritas"
    );
    eprintln!("MRTD (single pass) {ours}: osc-veritas agrees");
}
