//! Boots for real under `qemu-system-x86_64` (TCG) with OVMF and swtpm as the TPM.
//!
//! * `ovmf_measured_boot_matches_measure`: the image's kernel with a probe initramfs that
//!   prints the vTPM's PCRs and OVMF's TCG2 event log. The log must replay to the PCRs; PCR 4
//!   and PCR 9 must equal what `measurements::tpm` computes from the files; and each SHA-384
//!   event of PCR 4/PCR 9 must equal the RTMR1/RTMR2 event `measurements::tdx` computes (the
//!   same OVMF code measures the same bytes into RTMRs under TDX).
//! * `enclave_as_pid1_is_appraised_and_answers_health_over_vsock`: the built image as an
//!   appliance (verifier, swtpm, vhost-device-vsock, host proxy, QEMU): the enclave sets
//!   itself up as PID 1, is appraised (PCR 4/9 reference values), unseals and answers
//!   `health` over virtio-vsock; its quoted PCRs 0-9 are OVMF's event log replayed.
//! * `enclave_as_pid1_stays_sealed_when_the_command_line_is_not_the_reference`: the same
//!   boot against a policy for another command line is refused on PCR 9.

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

/// `enclave::pid1::EVENTLOG_BEGIN` / `EVENTLOG_END`: the markers around the base64 event
/// log the enclave prints as PID 1.
const EVENTLOG_BEGIN: &str = "enclave: EVENTLOG-BEGIN";
const EVENTLOG_END: &str = "enclave: EVENTLOG-END";

/// The event log the enclave printed between its markers (kernel log lines dropped).
fn console_eventlog(console: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let b64: String = console
        .split(&format!("{}\n", EVENTLOG_BEGIN))
        .nth(1)?
        .split(EVENTLOG_END)
        .next()?
        .lines()
        .filter(|l| !l.starts_with('['))
        .collect();
    base64::engine::general_purpose::STANDARD.decode(b64).ok()
}

fn bin_dir() -> std::path::PathBuf {
    common::enclave_binary()
        .unwrap_or_else(|e| panic!("{e}"))
        .parent()
        .unwrap()
        .to_path_buf()
}

#[test]
fn enclave_as_pid1_is_appraised_and_answers_health_over_vsock() {
    common::prerequisites().unwrap_or_else(|e| panic!("{e}"));
    common::vhost_device_vsock().unwrap_or_else(|e| panic!("{e}"));
    let bin = bin_dir();
    for b in ["verifier", "host"] {
        assert!(
            bin.join(b).is_file(),
            "{} is missing: cargo build -p {b} (`cargo xtask test` builds every binary)",
            bin.join(b).display()
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("image");
    build(&img);
    let policy = |append: &str| common::appliance_policy(&img, append);
    let a = common::boot_appliance(dir.path(), &img, &bin, &policy, Duration::from_secs(480))
        .unwrap_or_else(|e| panic!("{e}"));
    let context = format!(
        "--- console ---\n{}\n--- host ---\n{}",
        a.console, a.host_logs
    );

    // PID 1 set itself up, and the enclave was appraised and unsealed: `health` through
    // the host proxy, over virtio-vsock, says it serves.
    assert!(
        a.console
            .contains("pid 1: filesystems mounted, modules loaded"),
        "{context}"
    );
    let h = a
        .health
        .as_ref()
        .unwrap_or_else(|| panic!("no health answer through the proxy\n{context}"));
    assert_eq!(
        h.state,
        wire::msg::KernelState::Serving,
        "health: {h:?}\n{context}"
    );
    assert_eq!(h.kernel_id, common::KERNEL_ID);
    assert_eq!(h.level, "KEE1-L1");
    let m = a
        .manifest
        .as_ref()
        .unwrap_or_else(|| panic!("no manifest\n{context}"));
    let man: attestation::manifest::GecManifest = wire::decode(&m.manifest).unwrap();
    assert_eq!(man.attestation_status, "affirming", "{context}");

    // The quote in the appraised bundle: its PCRs are OVMF's measured boot.
    let bundle = attestation::bundle::UnverifiedBundle::parse(&m.bundle)
        .unwrap()
        .verify_signature()
        .unwrap();
    let item = bundle
        .items()
        .iter()
        .find(|i| i.kind == attestation::evidence::EvidenceKind::Tpm)
        .unwrap_or_else(|| panic!("no TPM evidence in the bundle"));
    let ev = attestation::tpm::TpmEvidence::from_item_data(&item.data).unwrap();
    let extra = attestation::tpm::UnverifiedQuote::parse(&ev.attest)
        .unwrap()
        .extra_data()
        .to_vec();
    let quote = attestation::tpm::verify(&ev, &extra).unwrap();
    // The firmware's event log travels in the evidence itself (whole, at boot), and is
    // byte for byte the log the guest printed; the verifier replayed it to this quote
    // (else the result would not be affirming).
    let shipped = ev
        .event_log
        .as_ref()
        .unwrap_or_else(|| panic!("the quote carries no event log\n{context}"));
    assert_eq!(shipped.first_event, 0);
    let printed = console_eventlog(&a.console)
        .unwrap_or_else(|| panic!("no event log on the console\n{context}"));
    assert_eq!(
        shipped.log,
        EventLog::tail(&printed, 0).unwrap().0,
        "shipped log = the printed log"
    );
    let result = attestation::result::verify_result(&m.result, &a.verifier_public_key).unwrap();
    let executables = result
        .trust_vector
        .iter()
        .find(|c| c.claim == attestation::result::claim::EXECUTABLES)
        .unwrap();
    assert!(
        executables.reason.contains("event log") && executables.reason.contains("replays"),
        "{executables:?}"
    );
    let log = console_eventlog(&a.console)
        .unwrap_or_else(|| panic!("no event log on the console\n{context}"));
    let log = EventLog::parse(&log).unwrap();
    let replayed = replay(&log, DigestAlgorithm::Sha256).unwrap();
    assert_eq!(quote.pcrs().len(), 16);
    // PCRs 0-9 are the firmware's (TCG PC Client profile: OVMF's log covers them all);
    // PCR 10 is the kernel's IMA (`boot_aggregate`), logged by the kernel, not the firmware.
    for (i, value) in quote.pcrs().range(0..=9) {
        let want = replayed
            .get(&u32::from(*i))
            .cloned()
            .unwrap_or_else(|| vec![0u8; 32]);
        assert_eq!(
            hex::encode(value),
            hex::encode(want),
            "quoted PCR {i} vs OVMF's event log"
        );
    }
    // Firmware PCRs are not empty (OVMF measured them), and PCR 4/9 are `measure`'s.
    assert_ne!(quote.pcrs()[&0], [0u8; 32]);
    for (i, want) in common::expected_pcrs(&img, &a.append) {
        assert_eq!(hex::encode(quote.pcrs()[&i]), hex::encode(want), "PCR {i}");
    }
    eprintln!(
        "QEMU start to serving: {:?} (TCG); enclave boot-to-serving {:?} ms",
        a.ready_after, h.boot_to_serving_ms
    );
}

#[test]
fn enclave_as_pid1_stays_sealed_when_the_command_line_is_not_the_reference() {
    common::prerequisites().unwrap_or_else(|e| panic!("{e}"));
    common::vhost_device_vsock().unwrap_or_else(|e| panic!("{e}"));
    let bin = bin_dir();
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("image");
    build(&img);
    // The reference PCR 9 is for another command line (another kernel id): the quote the
    // enclave presents cannot match it.
    let policy = |append: &str| {
        common::appliance_policy(
            &img,
            &append.replace("enclave.kernel_id=k1", "enclave.kernel_id=k9"),
        )
    };
    let a = common::boot_appliance(dir.path(), &img, &bin, &policy, Duration::from_secs(480))
        .unwrap_or_else(|e| panic!("{e}"));
    let context = format!(
        "--- console ---\n{}\n--- host ---\n{}",
        a.console, a.host_logs
    );
    let h = a
        .health
        .as_ref()
        .unwrap_or_else(|| panic!("no health answer through the proxy\n{context}"));
    assert_eq!(
        h.state,
        wire::msg::KernelState::Sealed,
        "health: {h:?}\n{context}"
    );
    let reason = h.reason.clone().unwrap_or_default();
    assert!(reason.contains("pcr 9"), "reason: {reason}\n{context}");
    assert!(a.manifest.is_none());
    eprintln!("refused as expected: {reason}");
}
