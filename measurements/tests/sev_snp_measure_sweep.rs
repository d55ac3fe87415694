//! `measure snp` against `sev-snp-measure` 0.0.13 itself, process to process, over a sweep of
//! firmware images, vCPU counts (1 to 512), vCPU types and signature forms, guest features,
//! VMM types, direct-boot hashes, precomputed firmware digests, output formats and refused
//! inputs: stdout, exit status and (for refusals) the error line must be identical.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test code: a failed expectation is a test failure"
)]

mod common;

use common::peer;
use std::path::Path;
use std::process::Command;

struct Outcome {
    ok: bool,
    stdout: String,
    stderr_last: String,
}

fn run(program: &Path, prefix: &[&str], args: &[String], cwd: &Path) -> Outcome {
    let out = Command::new(program)
        .args(prefix)
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    Outcome {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr_last: stderr.lines().last().unwrap_or("").to_string(),
    }
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

#[test]
fn measure_snp_is_bit_identical_to_sev_snp_measure() {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let peer_bin = peer::sev_snp_measure(target).unwrap_or_else(|e| panic!("{e}"));
    let debian = peer::debian_ovmf().unwrap_or_else(|e| panic!("{e}"));
    let debian = debian.to_str().unwrap().to_string();
    let data = format!("{}/../ovmf/tests/data", env!("CARGO_MANIFEST_DIR"));
    let amdsev = format!("{data}/ovmf_AmdSev_suffix.bin");
    let x64 = format!("{data}/ovmf_OvmfX64_suffix.bin");
    let dir = tempfile::tempdir().unwrap();
    let kernel = dir.path().join("vmlinuz");
    let initrd = dir.path().join("initrd.img");
    std::fs::write(&kernel, peer::noise(3 << 20, 1)).unwrap();
    std::fs::write(&initrd, peer::noise((1 << 20) + 123, 2)).unwrap();
    let (k, i) = (kernel.to_str().unwrap(), initrd.to_str().unwrap());

    let mut cases: Vec<Vec<String>> = Vec::new();
    // Kernel hashes on the AmdSev build, across vCPU counts, types and guest features.
    let types = [
        "EPYC",
        "EPYC-v4",
        "EPYC-Rome",
        "EPYC-Milan",
        "EPYC-Milan-v2",
        "EPYC-Genoa",
        "EPYC-Turin",
    ];
    let features = ["0x1", "0x21", "0x3", "0x5", "0x31", "0x3f", "1", "0b100001"];
    let vcpus = [
        1u32, 2, 3, 4, 7, 8, 16, 31, 32, 64, 100, 128, 255, 256, 384, 511, 512,
    ];
    for (n, v) in vcpus.iter().enumerate() {
        let mut a = s(&[
            "--mode",
            "snp",
            "--vcpus",
            &v.to_string(),
            "--vcpu-type",
            types[n % types.len()],
            "--guest-features",
            features[n % features.len()],
            "--ovmf",
            &amdsev,
        ]);
        match n % 5 {
            0 => {}
            1 => a.extend(s(&["--kernel", k])),
            2 => a.extend(s(&["--kernel", k, "--initrd", i])),
            3 => a.extend(s(&[
                "--kernel",
                k,
                "--initrd",
                i,
                "--append",
                "console=ttyS0 quiet panic=-1",
            ])),
            _ => a.extend(s(&["--kernel", k, "--append", "init=/init ünïcode ✓"])),
        }
        cases.push(a);
    }
    // Debian's full OVMF.fd (no kernel-hashes section): firmware pages plus metadata.
    for (v, t) in [
        (1, "EPYC-Milan"),
        (2, "EPYC-Genoa"),
        (4, "EPYC-Turin"),
        (16, "EPYC-Rome"),
        (64, "EPYC-v4"),
        (512, "EPYC-Milan"),
    ] {
        cases.push(s(&[
            "--mode",
            "snp",
            "--vcpus",
            &v.to_string(),
            "--vcpu-type",
            t,
            "--ovmf",
            &debian,
        ]));
    }
    for (v, f) in [
        (3, "0x21"),
        (12, "0x3f"),
        (48, "0x1"),
        (96, "0x0"),
        (200, "0x11"),
        (333, "0x25"),
    ] {
        cases.push(s(&[
            "--mode",
            "snp",
            "--vcpus",
            &v.to_string(),
            "--vcpu-type",
            "EPYC-Genoa-v1",
            "--guest-features",
            f,
            "--ovmf",
            &debian,
        ]));
    }
    // The family/model/stepping and raw-signature forms.
    for (v, f, m, st) in [
        (2, "25", "1", "1"),
        (8, "25", "17", "0"),
        (3, "26", "0", "0"),
        (5, "23", "49", "0"),
        (9, "26", "17", "2"),
    ] {
        cases.push(s(&[
            "--mode",
            "snp",
            "--vcpus",
            &v.to_string(),
            "--vcpu-family",
            f,
            "--vcpu-model",
            m,
            "--vcpu-stepping",
            st,
            "--ovmf",
            &amdsev,
            "--kernel",
            k,
        ]));
    }
    for sig in ["0xa00f11", "0xb00f00", "10489617"] {
        cases.push(s(&[
            "--mode",
            "snp",
            "--vcpus",
            "6",
            "--vcpu-sig",
            sig,
            "--ovmf",
            &debian,
        ]));
    }
    // Firmware digest mode, and the precomputed digest fed back.
    for f in [&debian, &amdsev, &x64] {
        cases.push(s(&["--mode", "snp:ovmf-hash", "--ovmf", f]));
    }
    let ovmf_hash = run(
        &peer_bin,
        &[],
        &s(&["--mode", "snp:ovmf-hash", "--ovmf", &amdsev]),
        dir.path(),
    );
    assert!(ovmf_hash.ok);
    let h = ovmf_hash.stdout.trim().to_string();
    for v in ["1", "64"] {
        cases.push(s(&[
            "--mode",
            "snp",
            "--vcpus",
            v,
            "--vcpu-type",
            "EPYC-Genoa",
            "--ovmf",
            &amdsev,
            "--snp-ovmf-hash",
            &h,
            "--kernel",
            k,
            "--initrd",
            i,
            "--append",
            "ro",
        ]));
    }
    // VMM types.
    for (v, vmm, t) in [
        (1, "ec2", None),
        (4, "ec2", Some("EPYC-Milan")),
        (1, "gce", None),
        (8, "gce", Some("EPYC-Genoa")),
        (3, "QEMU", Some("EPYC-Turin")),
    ] {
        let mut a = s(&[
            "--mode",
            "snp",
            "--vcpus",
            &v.to_string(),
            "--vmm-type",
            vmm,
            "--ovmf",
            &amdsev,
        ]);
        if let Some(t) = t {
            a.extend(s(&["--vcpu-type", t]));
        }
        cases.push(a);
    }
    // Output forms.
    cases.push(s(&[
        "--mode",
        "snp",
        "--vcpus",
        "2",
        "--vcpu-type",
        "EPYC-Milan",
        "--ovmf",
        &debian,
        "--output-format",
        "base64",
    ]));
    cases.push(s(&[
        "--mode",
        "snp",
        "--vcpus",
        "2",
        "--vcpu-type",
        "EPYC-Milan",
        "--ovmf",
        &amdsev,
        "-v",
    ]));
    // SEV and SEV-ES.
    cases.push(s(&[
        "--mode", "sev", "--ovmf", &amdsev, "--kernel", k, "--initrd", i, "--append", "a",
    ]));
    cases.push(s(&[
        "--mode",
        "seves",
        "--vcpus",
        "4",
        "--vcpu-type",
        "EPYC-Rome",
        "--ovmf",
        &amdsev,
        "--kernel",
        k,
    ]));
    cases.push(s(&[
        "--mode",
        "seves",
        "--vcpus",
        "2",
        "--vcpu-type",
        "EPYC",
        "--ovmf",
        &debian,
    ]));
    // Refusals: no kernel-hashes section, no footer table.
    cases.push(s(&[
        "--mode",
        "snp",
        "--vcpus",
        "1",
        "--vcpu-type",
        "EPYC-v4",
        "--ovmf",
        &x64,
        "--kernel",
        k,
    ]));
    cases.push(s(&[
        "--mode",
        "snp",
        "--vcpus",
        "1",
        "--vcpu-type",
        "EPYC-v4",
        "--ovmf",
        &debian,
        "--kernel",
        k,
    ]));
    cases.push(s(&[
        "--mode",
        "seves",
        "--vcpus",
        "1",
        "--vcpu-type",
        "EPYC-v4",
        "--ovmf",
        &x64,
        "--kernel",
        k,
    ]));
    if Path::new("/usr/share/OVMF/OVMF_CODE_4M.fd").is_file() {
        cases.push(s(&[
            "--mode",
            "snp",
            "--vcpus",
            "1",
            "--vcpu-type",
            "EPYC-v4",
            "--ovmf",
            "/usr/share/OVMF/OVMF_CODE_4M.fd",
        ]));
    }
    assert!(cases.len() >= 50, "the sweep has {} cases", cases.len());

    let measure = Path::new(env!("CARGO_BIN_EXE_measure"));
    let results: Vec<(Outcome, Outcome)> = std::thread::scope(|scope| {
        let handles: Vec<_> = cases
            .chunks(cases.len().div_ceil(2))
            .map(|chunk| {
                let (peer_bin, dir) = (&peer_bin, dir.path());
                scope.spawn(move || {
                    chunk
                        .iter()
                        .map(|a| (run(peer_bin, &[], a, dir), run(measure, &["snp"], a, dir)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let mut digests = 0;
    for (args, (want, got)) in cases.iter().zip(&results) {
        let shown = args.join(" ");
        assert_eq!(
            got.ok, want.ok,
            "exit status differs for `{shown}`: peer {}",
            want.stderr_last
        );
        if want.ok {
            assert!(
                !want.stdout.trim().is_empty(),
                "peer printed nothing for `{shown}`"
            );
            assert_eq!(got.stdout, want.stdout, "output differs for `{shown}`");
            digests += 1;
        } else if want.stderr_last.starts_with("Error:") {
            assert_eq!(
                got.stderr_last, want.stderr_last,
                "error differs for `{shown}`"
            );
        }
    }
    assert!(digests >= 50, "only {digests} digests compared");
}
