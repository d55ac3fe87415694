//! Boots for real under `qemu-system-x86_64` (TCG) with OVMF and swtpm as the TPM.
//!
//! * `ovmf_measured_boot_matches_measure`: the image's kernel with a probe initramfs that
//!   prints the vTPM's PCRs and OVMF's TCG2 event log. The log must replay to the PCRs; PCR 4
//!   and PCR 9 must equal what `measurements::tpm` computes from the files; and each SHA-384
//!   event of PCR 4/PCR 9 must equal the RTMR1/RTMR2 event `measurements::tdx` computes (the
//!   same OVMF code measures the same bytes into RTMRs under TDX).
//! * `image_boots_with_the_enclave_as_pid1`: the built image itself; the kernel must start
//!   the enclave as `/init` with the libraries the image carries.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test code: a failed expectation is a test failure"
)]

mod common;

use attestation::eventlog::{replay, DigestAlgorithm, EventLog};
use measurements::tdx::{self, linux, DirectBoot, InitrdArg};
use measurements::tpm;
use sha2::{Sha256, Sha384};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

fn build(out: &Path) -> image::manifest::Manifest {
    let enclave = common::enclave_binary().unwrap_or_else(|e| panic!("{e}"));
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("image-cache");
    image::build(
        &image::BuildOptions {
            enclave,
            out: out.to_path_buf(),
            cache,
            kernel_deb: None,
            allow_other_kernel: false,
            cmdline: image::pins::CMDLINE.to_string(),
            strip_debug: true,
        },
        &mut |l| eprintln!("image: {l}"),
    )
    .unwrap_or_else(|e| panic!("image build: {e:?}"))
}

#[test]
fn ovmf_measured_boot_matches_measure() {
    common::prerequisites().unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("image");
    build(&img);
    let kernel = std::fs::read(img.join("vmlinuz")).unwrap();
    let probe = common::probe_initramfs().unwrap_or_else(|e| panic!("{e}"));
    let probe_path = dir.path().join("probe.img");
    std::fs::write(&probe_path, &probe).unwrap();
    let append = "console=ttyS0 panic=-1 quiet";
    let tpm = common::Swtpm::start(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let b = common::boot(
        dir.path(),
        &tpm,
        &img.join("vmlinuz"),
        &probe_path,
        append,
        "LOG-END",
        Duration::from_secs(540),
    )
    .unwrap();
    let (pcrs, log_bytes) = common::probe_output(&b.console)
        .unwrap_or_else(|e| panic!("{e}\n--- console ---\n{}", b.console));
    assert_eq!(pcrs.len(), 10, "{}", b.console);
    let log = EventLog::parse(&log_bytes).unwrap();

    // The log replays to the PCRs the TPM reports.
    let replayed = replay(&log, DigestAlgorithm::Sha256).unwrap();
    for (i, value) in &pcrs {
        let want = replayed.get(i).cloned().unwrap_or_else(|| vec![0u8; 32]);
        assert_eq!(
            hex::encode(value),
            hex::encode(want),
            "PCR {i} vs its event log"
        );
    }

    // PCR 4 and PCR 9 are what `measure` predicts from the files.
    let boot = DirectBoot {
        kernel: &kernel,
        initrd: Some(&probe),
        cmdline: append,
        qemu_patch: Some(linux::QemuLoad {
            memory_bytes: common::MEMORY_MIB << 20,
            initrd_bytes: u32::try_from(probe.len()).unwrap(),
            acpi_data_size: linux::ACPI_DATA_SIZE,
        }),
        initrd_arg: InitrdArg::Suffix,
    };
    let expected = tpm::expected_sha256_pcrs(&boot).unwrap();
    let actual: BTreeMap<u32, Vec<u8>> = pcrs.into_iter().collect();
    for (i, want) in &expected {
        assert_eq!(
            hex::encode(&actual[&u32::from(*i)]),
            hex::encode(want),
            "PCR {i}"
        );
    }

    // Event by event, in both banks.
    let events_of = |pcr: u32, alg| -> Vec<String> {
        log.events()
            .iter()
            .filter(|e| e.pcr_index() == pcr)
            .map(|e| hex::encode(e.digest(alg).unwrap()))
            .collect()
    };
    for (alg, ours) in [
        (
            DigestAlgorithm::Sha256,
            tpm::event_digests::<Sha256>(&boot).unwrap(),
        ),
        (
            DigestAlgorithm::Sha384,
            tpm::event_digests::<Sha384>(&boot).unwrap(),
        ),
    ] {
        for (pcr, digests) in ours {
            let ours: Vec<String> = digests.iter().map(hex::encode).collect();
            assert_eq!(
                events_of(u32::from(pcr), alg),
                ours,
                "PCR {pcr} events, {alg:?}"
            );
        }
    }
    // The TDX direct-boot events are the same measurements: kernel first in RTMR1,
    // command line and initrd in RTMR2.
    let tdx_log = tdx::direct_boot_log(&boot).unwrap();
    let pcr4 = events_of(4, DigestAlgorithm::Sha384);
    let pcr9 = events_of(9, DigestAlgorithm::Sha384);
    assert_eq!(
        pcr4[0],
        hex::encode(tdx_log.rtmr1[0]),
        "kernel Authenticode SHA-384"
    );
    assert_eq!(pcr4[1], hex::encode(tdx_log.rtmr1[1]));
    let rtmr2: Vec<String> = tdx_log.rtmr2.iter().map(hex::encode).collect();
    assert_eq!(pcr9, rtmr2, "command line and initrd SHA-384");
    eprintln!("boot to probe output: {:?} (TCG)", b.marker_after);
}

#[test]
fn image_boots_with_the_enclave_as_pid1() {
    common::prerequisites().unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("image");
    let m = build(&img);
    let tpm = common::Swtpm::start(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    // The enclave's own arguments follow `--` (the kernel hands them to init).
    let append = format!(
        "{} -- --kernel-id k1 --state-dir /state --verifier-public-key 00 --max-attempts 1",
        m.cmdline
    );
    let b = common::boot(
        dir.path(),
        &tpm,
        &img.join("vmlinuz"),
        &img.join("initrd.img"),
        &append,
        "Run /init as init process",
        Duration::from_secs(540),
    )
    .unwrap();
    assert!(
        b.marker_after.is_some(),
        "the kernel never started /init\n--- console ---\n{}",
        b.console
    );
    // The enclave ran (its libraries resolved): it answers in its own words. Today that is
    // its argument parser refusing the `initrd=initrd` OVMF appends after `--` (see
    // docs/measurements.md, "Booting the image for real").
    let after_init = b
        .console
        .split("Run /init as init process")
        .nth(1)
        .unwrap_or("");
    assert!(
        after_init.contains("--kernel-id") && after_init.contains("--verifier-public-key"),
        "no output from the enclave\n--- console ---\n{}",
        b.console
    );
    eprintln!(
        "boot to /init: {:?}, whole boot {:?} (TCG)",
        b.marker_after, b.total
    );
}
