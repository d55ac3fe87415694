//! AMD SEV launch digests computed from the firmware image and the direct-boot inputs,
//! bit-identical to `sev-snp-measure` 0.0.13 (modes `snp`, `snp:ovmf-hash`, `seves`, `sev`;
//! VMM types QEMU, EC2, GCE).
//!
//! SNP: the firmware pages (or a precomputed digest of them), then every SEV metadata section
//! in image order (zero pages, the secrets page, the CPUID page, the kernel-hashes page), then
//! one VMSA page per vCPU (BSP first). SEV and SEV-ES: SHA-256 over the firmware, the hashes
//! table and (SEV-ES) the VMSA pages.

pub mod gctx;
pub mod hashes;
pub mod vcpu;
pub mod vmsa;

use gctx::{Gctx, PageType, LD_BYTES, PAGE_BYTES};
use hashes::SevHashes;
use ovmf::{Ovmf, SevSectionKind};
use sha2::{Digest, Sha256, Sha384};
use vcpu::CpuSig;
use vmsa::VmmType;

/// Most vCPUs accepted (SNP guests support up to 512; the bound keeps the work finite).
pub const MAX_VCPUS: u32 = 4096;

/// Why a launch digest cannot be computed. Messages match `sev-snp-measure`'s where it has one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SnpError {
    /// The image size is not a whole number of pages.
    #[error("firmware size {len} is not a multiple of 4096 bytes")]
    NotPageAligned {
        /// Image size.
        len: usize,
    },
    /// No SEV-ES reset block in the footer table (not an SEV-capable build).
    #[error("Can't find SEV_ES_RESET_BLOCK_GUID entry in OVMF table")]
    NoSevEsResetBlock,
    /// The reset block's address is zero, so APs cannot start.
    #[error("the SEV-ES reset block gives AP reset address 0: only 1 vcpu can be measured")]
    NoApResetAddress,
    /// A kernel was given but the firmware has no kernel-hashes section.
    #[error("Kernel specified but OVMF metadata doesn't include SNP_KERNEL_HASHES section")]
    NoKernelHashesSection,
    /// A kernel was given (SEV/SEV-ES) but the firmware has no hashes table.
    #[error("Kernel specified but OVMF doesn't support kernel/initrd/cmdline measurement")]
    SevHashesUnsupported,
    /// The kernel-hashes section needs the hashes-table location, which is missing.
    #[error("Can't find SEV_HASH_TABLE_RV_GUID entry in OVMF table")]
    NoHashesTable,
    /// The kernel-hashes section is not one page, or the table does not fit in it.
    #[error("the kernel-hashes section ({size} bytes, table at page offset {offset:#x}) cannot hold the hashes table")]
    HashesPage {
        /// Section size.
        size: u32,
        /// Offset of the table in its page.
        offset: u32,
    },
    /// A metadata section of a type this tool does not know.
    #[error("unknown OVMF metadata section type {kind:#x}")]
    UnknownSection {
        /// The type value.
        kind: u32,
    },
    /// QEMU needs the vCPU signature for RDX.
    #[error("missing --vcpu-type or --vcpu-sig or --vcpu-family in guest mode '{mode}'")]
    MissingVcpuSig {
        /// The mode asked for.
        mode: &'static str,
    },
    /// More vCPUs than [`MAX_VCPUS`].
    #[error("{vcpus} vcpus is more than the {MAX_VCPUS} supported")]
    TooManyVcpus {
        /// Requested count.
        vcpus: u32,
    },
}

/// Inputs of an SNP launch digest.
#[derive(Debug, Clone)]
pub struct SnpInputs<'a> {
    /// The firmware.
    pub ovmf: &'a Ovmf,
    /// Number of vCPUs.
    pub vcpus: u32,
    /// vCPU signature (required for QEMU).
    pub vcpu_sig: Option<CpuSig>,
    /// The VMM.
    pub vmm: VmmType,
    /// SEV_FEATURES of every VMSA (`--guest-features`).
    pub guest_features: u64,
    /// Direct-boot hashes (`--kernel`, `--initrd`, `--append`).
    pub hashes: Option<SevHashes>,
    /// A precomputed firmware digest (`--snp-ovmf-hash`) replacing the firmware pages.
    pub ovmf_hash: Option<[u8; LD_BYTES]>,
}

fn check_pages(ovmf: &Ovmf) -> Result<(), SnpError> {
    let len = ovmf.bytes().len();
    if len % PAGE_BYTES != 0 {
        return Err(SnpError::NotPageAligned { len });
    }
    Ok(())
}

/// The digest of the firmware pages alone (`--mode snp:ovmf-hash`).
pub fn snp_ovmf_hash(ovmf: &Ovmf) -> Result<[u8; LD_BYTES], SnpError> {
    check_pages(ovmf)?;
    let mut g = Gctx::default();
    g.update_normal_pages(ovmf.gpa(), ovmf.bytes());
    Ok(g.ld())
}

/// RDX of the VMSA: the signature for QEMU; EC2 and GCE put a fixed value there.
fn rdx_sig(vmm: VmmType, sig: Option<CpuSig>, mode: &'static str) -> Result<u32, SnpError> {
    match (vmm, sig) {
        (_, Some(s)) => Ok(s.0),
        (VmmType::Qemu, None) => Err(SnpError::MissingVcpuSig { mode }),
        (_, None) => Ok(0),
    }
}

fn reset_eip(ovmf: &Ovmf) -> Result<u32, SnpError> {
    ovmf.sev_es_reset()
        .map(|r| r.eip)
        .ok_or(SnpError::NoSevEsResetBlock)
}

fn vmsa_digests(
    eip: u32,
    vcpus: u32,
    features: u64,
    sig: u32,
    vmm: VmmType,
) -> Result<([u8; PAGE_BYTES], Option<[u8; PAGE_BYTES]>), SnpError> {
    if vcpus > MAX_VCPUS {
        return Err(SnpError::TooManyVcpus { vcpus });
    }
    let bsp = vmsa::save_area(vmsa::BSP_EIP, features, sig, vmm);
    let ap = (eip != 0).then(|| vmsa::save_area(eip, features, sig, vmm));
    if vcpus > 1 && ap.is_none() {
        return Err(SnpError::NoApResetAddress);
    }
    Ok((bsp, ap))
}

/// The SEV-SNP launch digest (`--mode snp`).
pub fn snp_launch_digest(inputs: &SnpInputs<'_>) -> Result<[u8; LD_BYTES], SnpError> {
    let ovmf = inputs.ovmf;
    if inputs.hashes.is_some() && !ovmf.supports_snp_kernel_hashes() {
        return Err(SnpError::NoKernelHashesSection);
    }
    let sig = rdx_sig(inputs.vmm, inputs.vcpu_sig, "snp")?;
    let eip = reset_eip(ovmf)?;
    let (bsp, ap) = vmsa_digests(eip, inputs.vcpus, inputs.guest_features, sig, inputs.vmm)?;
    let sections = ovmf
        .sev_metadata()
        .map(|m| m.sections.as_slice())
        .unwrap_or(&[]);
    let mut g = match inputs.ovmf_hash {
        Some(seed) => Gctx::new(seed),
        None => {
            check_pages(ovmf)?;
            let mut g = Gctx::default();
            g.update_normal_pages(ovmf.gpa(), ovmf.bytes());
            g
        }
    };
    for s in sections {
        let (gpa, size) = (u64::from(s.gpa), u64::from(s.size));
        match s.kind {
            SevSectionKind::SnpSecMem if inputs.vmm == VmmType::Gce => {
                g.update_empty_pages(PageType::Unmeasured, gpa, size)
            }
            SevSectionKind::SnpSecMem | SevSectionKind::SvsmCaa => {
                g.update_empty_pages(PageType::Zero, gpa, size)
            }
            SevSectionKind::SnpSecrets => g.update_special_page(PageType::Secrets, gpa),
            SevSectionKind::Cpuid if inputs.vmm == VmmType::Ec2 => {}
            SevSectionKind::Cpuid => g.update_special_page(PageType::Cpuid, gpa),
            SevSectionKind::SnpKernelHashes => match &inputs.hashes {
                None => g.update_empty_pages(PageType::Zero, gpa, size),
                Some(h) => {
                    let table_gpa = ovmf.sev_hashes_table().ok_or(SnpError::NoHashesTable)?.gpa;
                    let offset = table_gpa & 0xfff;
                    let bad = SnpError::HashesPage {
                        size: s.size,
                        offset,
                    };
                    if s.size != 4096 {
                        return Err(bad);
                    }
                    let page = usize::try_from(offset)
                        .ok()
                        .and_then(|o| h.page(o))
                        .ok_or(bad)?;
                    g.update_normal_pages(gpa, &page);
                }
            },
            SevSectionKind::Unknown(kind) => return Err(SnpError::UnknownSection { kind }),
        }
    }
    if inputs.vmm == VmmType::Ec2 {
        // EC2 adds the CPUID page after every other metadata page.
        for s in sections.iter().filter(|s| s.kind == SevSectionKind::Cpuid) {
            g.update_special_page(PageType::Cpuid, u64::from(s.gpa));
        }
    }
    let bsp_digest: [u8; LD_BYTES] = Sha384::digest(bsp).into();
    let ap_digest: Option<[u8; LD_BYTES]> = ap.map(|p| Sha384::digest(p).into());
    for i in 0..inputs.vcpus {
        match (i, &ap_digest) {
            (0, _) => g.update_vmsa_digest(&bsp_digest),
            (_, Some(d)) => g.update_vmsa_digest(d),
            (_, None) => return Err(SnpError::NoApResetAddress),
        }
    }
    Ok(g.ld())
}

/// The SEV (`--mode sev`) launch digest: SHA-256 over the firmware and the hashes table.
pub fn sev_launch_digest(ovmf: &Ovmf, hashes: Option<&SevHashes>) -> Result<[u8; 32], SnpError> {
    Ok(sev_hasher(ovmf, hashes)?.finalize().into())
}

fn sev_hasher(ovmf: &Ovmf, hashes: Option<&SevHashes>) -> Result<Sha256, SnpError> {
    let mut h = Sha256::new();
    h.update(ovmf.bytes());
    if let Some(hashes) = hashes {
        if !ovmf.supports_sev_hashes() {
            return Err(SnpError::SevHashesUnsupported);
        }
        h.update(hashes.table());
    }
    Ok(h)
}

/// The SEV-ES (`--mode seves`) launch digest: SEV's, then the VMSA pages (SEV_FEATURES 0).
pub fn seves_launch_digest(
    ovmf: &Ovmf,
    hashes: Option<&SevHashes>,
    vcpus: u32,
    vcpu_sig: Option<CpuSig>,
    vmm: VmmType,
) -> Result<[u8; 32], SnpError> {
    let mut h = sev_hasher(ovmf, hashes)?;
    let sig = rdx_sig(vmm, vcpu_sig, "seves")?;
    let (bsp, ap) = vmsa_digests(reset_eip(ovmf)?, vcpus, 0, sig, vmm)?;
    for i in 0..vcpus {
        match (i, &ap) {
            (0, _) => h.update(bsp),
            (_, Some(p)) => h.update(p),
            (_, None) => return Err(SnpError::NoApResetAddress),
        }
    }
    Ok(h.finalize().into())
}
