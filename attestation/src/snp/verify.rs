//! Verifier role: a report becomes a [`VerifiedSnpReport`] only when its VEK chains to a
//! pinned AMD root, its ECDSA P-384 signature over bytes `0x000..0x2A0` verifies under that
//! VEK, and the TCB and chip id the VEK certifies are the ones the report claims.
//!
//! Appraisal (policy bits, measurement, report data against the binding value, minimum TCB)
//! reads only the verified type's accessors and is done elsewhere.

use super::endorser::{self, Product, VerifiedVek};
use super::error::SnpError;
use super::report::{
    CpuId, GuestPolicy, PlatformInfo, SigningKey, TcbParts, TcbVersion, UnverifiedSnpReport,
    P384_SCALAR_BYTES, SIG_ALGO_ECDSA_P384_SHA384, SIG_COMPONENT_BYTES,
};

/// A report whose signature, endorsement chain and TCB binding have been checked. Only
/// [`verify_snp`] and [`UnverifiedSnpReport::verify_with`] make one.
#[derive(Debug, Clone)]
pub struct VerifiedSnpReport {
    report: UnverifiedSnpReport,
    product: Product,
}

impl VerifiedSnpReport {
    /// Product whose root endorses the signing key.
    pub fn product(&self) -> Product {
        self.product
    }
    /// VCEK or VLEK.
    pub fn signing_key(&self) -> SigningKey {
        self.report.signing_key
    }
    /// Report version.
    pub fn version(&self) -> u32 {
        self.report.version
    }
    /// REPORT_DATA: the value the guest bound into the report.
    pub fn report_data(&self) -> &[u8; 64] {
        &self.report.report_data
    }
    /// MEASUREMENT: the launch digest.
    pub fn measurement(&self) -> &[u8; 48] {
        &self.report.measurement
    }
    /// HOST_DATA.
    pub fn host_data(&self) -> &[u8; 32] {
        &self.report.host_data
    }
    /// Guest policy bits.
    pub fn policy(&self) -> GuestPolicy {
        self.report.policy
    }
    /// Platform info bits.
    pub fn platform_info(&self) -> PlatformInfo {
        self.report.platform_info
    }
    /// VMPL the report was requested from.
    pub fn vmpl(&self) -> u32 {
        self.report.vmpl
    }
    /// Guest SVN.
    pub fn guest_svn(&self) -> u32 {
        self.report.guest_svn
    }
    /// FAMILY_ID and IMAGE_ID from the ID block.
    pub fn family_image_id(&self) -> (&[u8; 16], &[u8; 16]) {
        (&self.report.family_id, &self.report.image_id)
    }
    /// ID_KEY_DIGEST.
    pub fn id_key_digest(&self) -> &[u8; 48] {
        &self.report.id_key_digest
    }
    /// AUTHOR_KEY_DIGEST, when AUTHOR_KEY_EN is set.
    pub fn author_key_digest(&self) -> Option<&[u8; 48]> {
        self.report
            .author_key_en
            .then_some(&self.report.author_key_digest)
    }
    /// REPORT_ID and REPORT_ID_MA.
    pub fn report_ids(&self) -> (&[u8; 32], &[u8; 32]) {
        (&self.report.report_id, &self.report.report_id_ma)
    }
    /// REPORTED_TCB, raw and split by the product's layout (this is the TCB the VEK certifies).
    pub fn reported_tcb(&self) -> (TcbVersion, TcbParts) {
        (
            self.report.reported_tcb,
            self.report.reported_tcb.parts(self.product),
        )
    }
    /// CURRENT_TCB.
    pub fn current_tcb(&self) -> TcbVersion {
        self.report.current_tcb
    }
    /// COMMITTED_TCB.
    pub fn committed_tcb(&self) -> TcbVersion {
        self.report.committed_tcb
    }
    /// LAUNCH_TCB.
    pub fn launch_tcb(&self) -> TcbVersion {
        self.report.launch_tcb
    }
    /// CHIP_ID.
    pub fn chip_id(&self) -> &[u8; 64] {
        &self.report.chip_id
    }
    /// CPUID family/model/stepping (report version 3 and later).
    pub fn cpuid(&self) -> Option<CpuId> {
        self.report.cpuid
    }
    /// The whole parsed report, for fields without an accessor.
    pub fn report(&self) -> &UnverifiedSnpReport {
        &self.report
    }
}

/// Parses `report`, checks `vek_der` against the pinned root of `product` (or infers the
/// product by trying each pinned root), and verifies the report with it.
pub fn verify_snp(
    report: &[u8],
    vek_der: &[u8],
    product: Option<Product>,
) -> Result<VerifiedSnpReport, SnpError> {
    let parsed = UnverifiedSnpReport::parse(report)?;
    let vek = endorser::verify_vek(vek_der, product, parsed.signing_key)?;
    parsed.verify_with(&vek)
}

/// Converts a 72-byte little-endian signature component into a big-endian P-384 scalar,
/// refusing nonzero bytes above the scalar (Table 139: R and S are zero-extended).
fn scalar_be(le: &[u8; SIG_COMPONENT_BYTES]) -> Result<[u8; P384_SCALAR_BYTES], SnpError> {
    let (low, high) = le.split_at(P384_SCALAR_BYTES);
    if high.iter().any(|b| *b != 0) {
        return Err(SnpError::SignatureNotCanonical);
    }
    let mut be: [u8; P384_SCALAR_BYTES] =
        low.try_into().map_err(|_| SnpError::SignatureMalformed)?;
    be.reverse();
    Ok(be)
}

impl UnverifiedSnpReport {
    /// Verifies this report with an already endorsed VEK (see [`endorser::verify_vek`]).
    pub fn verify_with(self, vek: &VerifiedVek) -> Result<VerifiedSnpReport, SnpError> {
        if self.signature_algo != SIG_ALGO_ECDSA_P384_SHA384 {
            return Err(SnpError::UnsupportedSignatureAlgorithm {
                algo: self.signature_algo,
            });
        }
        if let SigningKey::Other(key) = self.signing_key {
            return Err(SnpError::UnsupportedSigningKey { key });
        }
        if vek.kind() != self.signing_key {
            return Err(SnpError::UnsupportedSigningKey {
                key: match self.signing_key {
                    SigningKey::Vcek => 0,
                    SigningKey::Vlek => 1,
                    SigningKey::Other(k) => k,
                },
            });
        }
        // Bytes after R and S in the 512-byte SIGNATURE field are reserved (Table 23).
        let reserved = self
            .signature_raw
            .get(2 * SIG_COMPONENT_BYTES..)
            .ok_or(SnpError::SignatureMalformed)?;
        if reserved.iter().any(|b| *b != 0) {
            return Err(SnpError::SignatureNotCanonical);
        }
        let r = scalar_be(&self.signature_r)?;
        let s = scalar_be(&self.signature_s)?;
        // Scalars must be in range (typed error) before the signature check proper.
        p384::ecdsa::Signature::from_scalars(r, s).map_err(|_| SnpError::SignatureMalformed)?;
        let mut rs = [0u8; 2 * P384_SCALAR_BYTES];
        let (rd, sd) = rs.split_at_mut(P384_SCALAR_BYTES);
        rd.copy_from_slice(&r);
        sd.copy_from_slice(&s);
        // ring's P-384 is several times faster than the pure-Rust one; same ECDSA check.
        ring::signature::UnparsedPublicKey::new(
            &ring::signature::ECDSA_P384_SHA384_FIXED,
            vek.point(),
        )
        .verify(self.signed.as_slice(), &rs)
        .map_err(|_| SnpError::BadReportSignature)?;

        let product = vek.product();
        if let Some(cpuid) = self.cpuid {
            if cpuid.family != product.cpuid_family() {
                return Err(SnpError::ProductMismatch {
                    family: cpuid.family,
                    product,
                });
            }
        }
        let reported = self.reported_tcb.parts(product);
        let certified = vek.claims().tcb;
        let pairs = [
            ("bootloader", reported.bootloader, certified.bootloader),
            ("tee", reported.tee, certified.tee),
            ("snp", reported.snp, certified.snp),
            ("microcode", reported.microcode, certified.microcode),
        ];
        for (field, report, cert) in pairs {
            if report != cert {
                return Err(SnpError::TcbMismatch {
                    field,
                    report,
                    cert,
                });
            }
        }
        if let (Some(report), Some(cert)) = (reported.fmc, certified.fmc) {
            if report != cert {
                return Err(SnpError::TcbMismatch {
                    field: "fmc",
                    report,
                    cert,
                });
            }
        }
        if let Some(hwid) = &vek.claims().hwid {
            if self.chip_id.get(..hwid.len()) != Some(hwid.as_slice()) {
                return Err(SnpError::ChipIdMismatch);
            }
        }
        Ok(VerifiedSnpReport {
            report: self,
            product,
        })
    }
}
