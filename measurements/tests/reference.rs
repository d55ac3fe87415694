//! `measure reference` over an image directory: values load as the verifier's reference
//! file, SNP binds the kernel when the firmware has a kernel-hashes section, and a part that
//! does not match the manifest is refused.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test code: a failed expectation is a test failure"
)]

use attestation::reference::ReferenceValues;
use image::manifest::{KernelSource, Manifest, Part};
use measurements::reference::{reference_values, LaunchConfig, ReferenceError};
use measurements::snp::{self, hashes::SevHashes, vcpu::CpuSig, vmsa::VmmType, SnpInputs};
use measurements::tdx::{InitrdArg, PageOrder};
use ovmf::Ovmf;
use std::path::Path;

/// A minimal PE32+ image: headers (0x200 bytes) and one 0x200-byte section.
fn tiny_pe() -> Vec<u8> {
    let mut pe = vec![0u8; 0x400];
    pe[..2].copy_from_slice(b"MZ");
    pe[0x3c..0x40].copy_from_slice(&0x40u32.to_le_bytes());
    pe[0x40..0x44].copy_from_slice(b"PE\0\0");
    let coff = 0x44;
    pe[coff..coff + 2].copy_from_slice(&0x8664u16.to_le_bytes());
    pe[coff + 2..coff + 4].copy_from_slice(&1u16.to_le_bytes());
    pe[coff + 16..coff + 18].copy_from_slice(&240u16.to_le_bytes());
    let opt = coff + 20;
    pe[opt..opt + 2].copy_from_slice(&0x20bu16.to_le_bytes());
    pe[opt + 60..opt + 64].copy_from_slice(&0x200u32.to_le_bytes());
    pe[opt + 108..opt + 112].copy_from_slice(&16u32.to_le_bytes());
    let sec = opt + 240;
    pe[sec..sec + 5].copy_from_slice(b".text");
    pe[sec + 16..sec + 20].copy_from_slice(&0x200u32.to_le_bytes());
    pe[sec + 20..sec + 24].copy_from_slice(&0x200u32.to_le_bytes());
    for (i, b) in pe[0x200..].iter_mut().enumerate() {
        *b = u8::try_from(i % 251).unwrap();
    }
    pe
}

fn image_dir(dir: &Path, kernel: &[u8], initrd: &[u8], cmdline: &str) {
    std::fs::write(dir.join("vmlinuz"), kernel).unwrap();
    std::fs::write(dir.join("initrd.img"), initrd).unwrap();
    std::fs::write(dir.join("cmdline"), cmdline).unwrap();
    let m = Manifest {
        version: 1,
        kernel: Part::of(Some("vmlinuz"), kernel),
        kernel_source: KernelSource {
            package: "test".into(),
            version: "0".into(),
            deb_sha256: "00".into(),
            release: "0".into(),
        },
        initrd: Part::of(Some("initrd.img"), initrd),
        cmdline: cmdline.into(),
        cmdline_digests: Part::of(None, cmdline.as_bytes()),
        enclave: Part::of(None, b""),
        modules: vec![],
        contents: vec![],
    };
    std::fs::write(dir.join("manifest.json"), serde_json::to_vec(&m).unwrap()).unwrap();
}

fn fixture(name: &str) -> Ovmf {
    let p = format!("{}/../ovmf/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    Ovmf::parse(std::fs::read(p).unwrap()).unwrap()
}

fn config(snp: Option<Ovmf>, tdx: Option<Ovmf>) -> LaunchConfig {
    LaunchConfig {
        snp_ovmf: snp,
        tdx_ovmf: tdx,
        vcpus: vec![1, 4],
        vcpu_sig: CpuSig::from_type("EPYC-Genoa").unwrap(),
        guest_features: 1,
        memory_bytes: 2 << 30,
        qemu_patches_kernel: false,
        page_order: PageOrder::SinglePass,
        initrd_arg: InitrdArg::Suffix,
    }
}

#[test]
fn reference_values_of_an_image_directory() {
    let dir = tempfile::tempdir().unwrap();
    let (kernel, initrd, cmdline) = (tiny_pe(), vec![7u8; 5000], "console=ttyS0");
    image_dir(dir.path(), &kernel, &initrd, cmdline);
    let amdsev = fixture("ovmf_AmdSev_suffix.bin");
    let debian = Ovmf::parse(
        std::fs::read("/usr/share/ovmf/OVMF.fd")
            .expect("/usr/share/ovmf/OVMF.fd: apt-get install ovmf (`cargo xtask test` does)"),
    )
    .unwrap();
    let (values, notes) =
        reference_values(dir.path(), &config(Some(amdsev.clone()), Some(debian))).unwrap();
    assert!(notes.is_empty(), "{notes:?}");
    let text = serde_json::to_vec(&values).unwrap();
    assert_eq!(ReferenceValues::from_json(&text).unwrap(), values);

    let snp = values.snp.unwrap();
    assert_eq!(snp.measurements.len(), 2);
    let want = snp::snp_launch_digest(&SnpInputs {
        ovmf: &amdsev,
        vcpus: 4,
        vcpu_sig: CpuSig::from_type("EPYC-Genoa"),
        vmm: VmmType::Qemu,
        guest_features: 1,
        hashes: Some(SevHashes::new(&kernel, Some(&initrd), Some(cmdline))),
        ovmf_hash: None,
    })
    .unwrap();
    assert_eq!(snp.measurements[1], hex::encode(want));
    let tdx = values.tdx.unwrap();
    assert_eq!(tdx.mrtd.len(), 1);
    assert!(tdx.rtmr[0].is_none() && tdx.rtmr[1].is_some() && tdx.rtmr[2].is_some());
    let pcrs = values.tpm.unwrap().pcrs;
    assert_eq!(pcrs.keys().copied().collect::<Vec<_>>(), [4, 9]);

    // Debian's firmware cannot bind the kernel under SNP: the operator is told.
    let x64 = fixture("ovmf_OvmfX64_suffix.bin");
    let (_, notes) = reference_values(dir.path(), &config(Some(x64), None)).unwrap();
    assert_eq!(notes.len(), 1);
}

#[test]
fn a_part_that_differs_from_the_manifest_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    image_dir(dir.path(), &tiny_pe(), b"initrd", "quiet");
    std::fs::write(dir.path().join("initrd.img"), b"tampered").unwrap();
    let e = reference_values(dir.path(), &config(None, None)).unwrap_err();
    assert!(matches!(e, ReferenceError::Tampered { .. }), "{e:?}");
    std::fs::remove_file(dir.path().join("manifest.json")).unwrap();
    let e = reference_values(dir.path(), &config(None, None)).unwrap_err();
    assert!(matches!(e, ReferenceError::Manifest(_)), "{e:?}");
}
