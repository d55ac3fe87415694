//! Expected vTPM PCRs of an OVMF direct boot that depend only on the image: PCR 4 (the
//! kernel, as loaded, and the boot-manager events) and PCR 9 (the command line as
//! `LoadOptions` and the initrd, edk2 `X86QemuLoadImageLib`). Event order and contents follow
//! the TCG PC Client Platform Firmware Profile (section 10.4.4 for PCR 4, EV_EVENT_TAG for
//! PCR 9) as OVMF logs them; checked against a real OVMF + swtpm boot under QEMU (the `image`
//! crate's boot test). PCRs 0-3, 5-7 depend on firmware, variables and VM configuration and
//! are not computed here.

use crate::tdx::{self, authenticode, DirectBoot, TdxError};
use digest::Digest;
use sha2::{Sha256, Sha384};
use std::collections::BTreeMap;

/// EV_SEPARATOR data.
const SEPARATOR: [u8; 4] = [0; 4];
/// The EV_EFI_ACTION OVMF's boot manager logs to PCR 4 before starting the kernel.
pub const CALLING_EFI_APPLICATION: &[u8] = b"Calling EFI Application from Boot Option";

/// The event digests of PCR 4 and PCR 9 with hash `D`, in log order.
pub fn event_digests<D: Digest>(
    b: &DirectBoot<'_>,
) -> Result<BTreeMap<u8, Vec<Vec<u8>>>, TdxError> {
    let kernel = tdx::loaded_kernel(b)?;
    let auth = authenticode::digest::<D>(&kernel).map_err(TdxError::Kernel)?;
    let cmdline = tdx::measured_cmdline(b.cmdline, b.initrd.is_some(), b.initrd_arg);
    let mut pcr9 = vec![D::digest(tdx::utf16z(&cmdline)).to_vec()];
    if let Some(i) = b.initrd {
        pcr9.push(D::digest(i).to_vec());
    }
    let pcr4 = vec![
        auth,
        D::digest(CALLING_EFI_APPLICATION).to_vec(),
        D::digest(SEPARATOR).to_vec(),
    ];
    Ok(BTreeMap::from([(4, pcr4), (9, pcr9)]))
}

/// Folds `digests` into a PCR that starts at zero.
pub fn replay<D: Digest>(digests: &[Vec<u8>]) -> Vec<u8> {
    let zero = vec![0u8; <D as Digest>::output_size()];
    digests.iter().fold(zero, |pcr, d| {
        let mut h = D::new();
        h.update(&pcr);
        h.update(d);
        h.finalize().to_vec()
    })
}

/// Expected SHA-256 PCR 4 and PCR 9.
pub fn expected_sha256_pcrs(b: &DirectBoot<'_>) -> Result<BTreeMap<u8, Vec<u8>>, TdxError> {
    Ok(event_digests::<Sha256>(b)?
        .into_iter()
        .map(|(i, d)| (i, replay::<Sha256>(&d)))
        .collect())
}

/// Expected SHA-384 PCR 4 and PCR 9.
pub fn expected_sha384_pcrs(b: &DirectBoot<'_>) -> Result<BTreeMap<u8, Vec<u8>>, TdxError> {
    Ok(event_digests::<Sha384>(b)?
        .into_iter()
        .map(|(i, d)| (i, replay::<Sha384>(&d)))
        .collect())
}
