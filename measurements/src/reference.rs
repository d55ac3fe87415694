//! `measure reference --image DIR`: the reference-values document (`attestation::reference`,
//! documented in `docs/reference-values.md`) computed from an image directory built by
//! `image build`: SEV-SNP launch digests, TDX MRTD and RTMR1/RTMR2, and vTPM PCRs 4 and 9.
//! Policy fields (TCB minimums, debug, SMT) keep their defaults; the operator edits them.

use crate::snp::{self, hashes::SevHashes, vcpu::CpuSig, vmsa::VmmType, SnpInputs};
use crate::tdx::{self, linux, DirectBoot, InitrdArg, PageOrder};
use crate::tpm;
use attestation::reference::{ReferenceValues, SnpReference, TdxReference, TpmReference};
use image::manifest::{Manifest, CMDLINE_FILE, INITRD_FILE, KERNEL_FILE};
use ovmf::Ovmf;
use std::path::Path;

/// The VM shape and launch stack the reference values are for.
#[derive(Debug, Clone)]
pub struct LaunchConfig {
    /// Firmware for SEV-SNP (needs a kernel-hashes section to bind the kernel).
    pub snp_ovmf: Option<Ovmf>,
    /// Firmware for TDX (TDVF metadata).
    pub tdx_ovmf: Option<Ovmf>,
    /// vCPU counts to accept (one SNP digest each).
    pub vcpus: Vec<u32>,
    /// vCPU model.
    pub vcpu_sig: CpuSig,
    /// SEV_FEATURES.
    pub guest_features: u64,
    /// Guest memory (QEMU's kernel-header patch depends on it).
    pub memory_bytes: u64,
    /// Whether QEMU patches the kernel header before it is measured (QEMU before 10.2).
    pub qemu_patches_kernel: bool,
    /// TDX page order.
    pub page_order: PageOrder,
    /// edk2's `initrd=initrd` placement.
    pub initrd_arg: InitrdArg,
}

/// Why reference values could not be computed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReferenceError {
    /// The image directory is incomplete.
    #[error("image directory")]
    Manifest(#[from] image::manifest::ManifestError),
    /// "cannot read `{0}`".
    #[error("cannot read `{0}`")]
    Io(String, #[source] std::io::Error),
    /// "`{file}` does not match the manifest's SHA-256".
    #[error("`{file}` does not match the manifest's SHA-256")]
    Tampered {
        /// The part.
        file: String,
    },
    /// SEV-SNP digest.
    #[error("SEV-SNP launch digest")]
    Snp(#[from] snp::SnpError),
    /// TDX or vTPM values.
    #[error("TDX/vTPM direct-boot measurement")]
    Tdx(#[from] tdx::TdxError),
}

fn part(dir: &Path, file: &str, sha256: &str) -> Result<Vec<u8>, ReferenceError> {
    let p = dir.join(file);
    let data = std::fs::read(&p).map_err(|e| ReferenceError::Io(p.display().to_string(), e))?;
    use sha2::Digest;
    if hex::encode(sha2::Sha256::digest(&data)) != sha256 {
        return Err(ReferenceError::Tampered {
            file: p.display().to_string(),
        });
    }
    Ok(data)
}

/// Reference values of the image in `dir` under `cfg`. Also returns notes for the operator
/// (what could not be bound).
pub fn reference_values(
    dir: &Path,
    cfg: &LaunchConfig,
) -> Result<(ReferenceValues, Vec<String>), ReferenceError> {
    let m = Manifest::load(dir)?;
    let kernel = part(dir, KERNEL_FILE, &m.kernel.sha256)?;
    let initrd = part(dir, INITRD_FILE, &m.initrd.sha256)?;
    let cmdline_bytes = part(dir, CMDLINE_FILE, &m.cmdline_digests.sha256)?;
    let cmdline = String::from_utf8_lossy(&cmdline_bytes).into_owned();
    let mut notes = Vec::new();
    let initrd_bytes = u32::try_from(initrd.len()).unwrap_or(u32::MAX);
    let boot = DirectBoot {
        kernel: &kernel,
        initrd: Some(&initrd),
        cmdline: &cmdline,
        qemu_patch: cfg.qemu_patches_kernel.then_some(linux::QemuLoad {
            memory_bytes: cfg.memory_bytes,
            initrd_bytes,
            acpi_data_size: linux::ACPI_DATA_SIZE,
        }),
        initrd_arg: cfg.initrd_arg,
    };
    let mut out = ReferenceValues::default();
    let pcrs = tpm::expected_sha256_pcrs(&boot)?;
    out.tpm = Some(TpmReference {
        pcrs: pcrs.into_iter().map(|(i, v)| (i, hex::encode(v))).collect(),
    });
    if let Some(fw) = &cfg.snp_ovmf {
        let hashes = if fw.supports_snp_kernel_hashes() {
            Some(SevHashes::new(&kernel, Some(&initrd), Some(&cmdline)))
        } else {
            notes.push(
                "the SEV-SNP firmware has no kernel-hashes section: the launch digest covers the \
                 firmware only, not the kernel, initrd or command line (an AmdSev OVMF from \
                 edk2 newer than 2022.11 has one: `image ovmf-amdsev --edk2-version VERSION`)"
                    .into(),
            );
            None
        };
        let mut measurements = Vec::new();
        for &vcpus in &cfg.vcpus {
            let d = snp::snp_launch_digest(&SnpInputs {
                ovmf: fw,
                vcpus,
                vcpu_sig: Some(cfg.vcpu_sig),
                vmm: VmmType::Qemu,
                guest_features: cfg.guest_features,
                hashes: hashes.clone(),
                ovmf_hash: None,
            })?;
            measurements.push(hex::encode(d));
        }
        out.snp = Some(SnpReference {
            measurements,
            ..SnpReference::default()
        });
    }
    if let Some(fw) = &cfg.tdx_ovmf {
        let mrtd = tdx::mrtd(fw, cfg.page_order)?;
        let (r1, r2) = tdx::direct_boot_rtmrs(&boot)?;
        out.tdx = Some(TdxReference {
            mrtd: vec![hex::encode(mrtd)],
            rtmr: [None, Some(hex::encode(r1)), Some(hex::encode(r2)), None],
            ..TdxReference::default()
        });
    }
    Ok((out, notes))
}
