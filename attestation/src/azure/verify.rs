//! Verifier role: the chain from the hardware root to the vTPM quote.
//!
//! SEV-SNP: VCEK chains to the pinned AMD root and signs the SNP report ([`crate::snp`]); the
//! report comes from VMPL 0 (the paravisor, not the guest); its report data holds the runtime
//! data's digest; the runtime data names the AK; the AK signs the quote; the quote's
//! `extraData` is the verifier's nonce and its PCR digest covers the supplied PCR values.
//!
//! TDX: the same from the runtime data on, but the TDREPORT is only MAC'd. The TD quote made
//! from it is what chains to Intel's root, and its verification lives in [`crate::tdx`]; so
//! the TDX result is an [`AzureTdxBinding`], which is not a verified platform until the TD
//! quote verifies and its REPORTDATA equals [`AzureTdxBinding::expected_td_quote_report_data`].

use super::hcl::{HardwareReport, UnverifiedHclReport};
use super::runtime::RuntimeData;
use super::tdreport::TdReportStruct;
use super::AzureError;
use crate::snp::{Product, VerifiedSnpReport};
use crate::tpm::{PcrValue, VerifiedQuote};

/// The VMPL the paravisor runs at: an HCL report from any other VMPL did not come from it.
pub const PARAVISOR_VMPL: u32 = 0;
/// `TPM_ALG_RSASSA`, the scheme of every Azure vTPM quote.
const TPM_ALG_RSASSA: u16 = 0x0014;
/// `TPM_ALG_SHA256`.
const TPM_ALG_SHA256: u16 = 0x000b;
/// Largest RSA signature accepted (RSA-4096; Azure's AK is RSA-2048).
pub const MAX_SIGNATURE_BYTES: usize = 512;

/// A vTPM quote as Azure's vTPM returns it (`tpm2_quote`, `az-cvm-vtpm`'s `Quote`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VtpmQuote {
    /// The marshalled TPMS_ATTEST, the bytes the AK signed.
    pub attest: Vec<u8>,
    /// The bare RSASSA-PKCS1-v1_5 / SHA-256 signature (the `sig` of the TPMT_SIGNATURE).
    pub signature: Vec<u8>,
    /// The SHA-256 PCR values the quote covers.
    pub pcrs: Vec<PcrValue>,
}

/// An Azure SEV-SNP confidential VM whose whole chain verified, AMD root to vTPM quote.
#[derive(Debug, Clone)]
pub struct VerifiedAzureSnp {
    snp: VerifiedSnpReport,
    quote: VerifiedQuote,
    runtime: RuntimeData,
}

impl VerifiedAzureSnp {
    /// The verified SNP report (measurement, policy, TCB, …).
    pub fn snp(&self) -> &VerifiedSnpReport {
        &self.snp
    }
    /// The verified vTPM quote (PCR values).
    pub fn quote(&self) -> &VerifiedQuote {
        &self.quote
    }
    /// The runtime data the SNP report vouches for.
    pub fn runtime_data(&self) -> &RuntimeData {
        &self.runtime
    }
}

/// An Azure TDX confidential VM whose runtime data binding and vTPM quote verified; the TD
/// quote is carried, not verified (see the module docs). Not a verified platform.
#[derive(Debug, Clone)]
pub struct AzureTdxBinding {
    td_report: TdReportStruct,
    quote: VerifiedQuote,
    runtime: RuntimeData,
    td_quote: Vec<u8>,
}

impl AzureTdxBinding {
    /// The TDREPORT from the HCL report (MAC not verifiable offline).
    pub fn td_report(&self) -> &TdReportStruct {
        &self.td_report
    }
    /// The vTPM quote, verified under the AK the runtime data names.
    pub fn quote(&self) -> &VerifiedQuote {
        &self.quote
    }
    /// The runtime data, vouched for only once the TD quote verifies.
    pub fn runtime_data(&self) -> &RuntimeData {
        &self.runtime
    }
    /// The TD quote to verify to Intel's root with [`crate::tdx`].
    pub fn td_quote(&self) -> &[u8] {
        &self.td_quote
    }
    /// The REPORTDATA the verified TD quote must carry: the TDREPORT's, which holds the
    /// runtime data's digest.
    pub fn expected_td_quote_report_data(&self) -> &[u8; 64] {
        self.td_report.report_data()
    }
}

impl UnverifiedHclReport {
    /// Verifies an SEV-SNP HCL report and its vTPM quote: runtime data binding, the SNP report
    /// with `vcek_der` against the pinned AMD root of `product` (or whichever pinned root it
    /// chains to), VMPL 0, then the quote under the runtime data's AK with `extraData ==
    /// expected_nonce`.
    pub fn verify_snp(
        self,
        vcek_der: &[u8],
        product: Option<Product>,
        quote: &VtpmQuote,
        expected_nonce: &[u8],
    ) -> Result<VerifiedAzureSnp, AzureError> {
        self.check_runtime_data_binding()?;
        let Self {
            hardware, runtime, ..
        } = self;
        let report = match hardware {
            HardwareReport::Snp(report) => *report,
            other => {
                return Err(AzureError::WrongHardware {
                    expected: "sev-snp",
                    found: other.kind(),
                })
            }
        };
        let vek = crate::snp::verify_vek(vcek_der, product, report.signing_key)
            .map_err(AzureError::Snp)?;
        let snp = report.verify_with(&vek).map_err(AzureError::Snp)?;
        if snp.vmpl() != PARAVISOR_VMPL {
            return Err(AzureError::NotParavisorVmpl(snp.vmpl()));
        }
        let quote = verify_quote(&runtime, quote, expected_nonce)?;
        Ok(VerifiedAzureSnp {
            snp,
            quote,
            runtime,
        })
    }

    /// Checks a TDX HCL report and its vTPM quote as far as they can be checked without the
    /// TD quote's collateral: runtime data binding, then the quote under the runtime data's AK
    /// with `extraData == expected_nonce`. `td_quote` is carried for [`crate::tdx`].
    pub fn bind_tdx(
        self,
        td_quote: Vec<u8>,
        quote: &VtpmQuote,
        expected_nonce: &[u8],
    ) -> Result<AzureTdxBinding, AzureError> {
        self.check_runtime_data_binding()?;
        let Self {
            hardware, runtime, ..
        } = self;
        let td_report = match hardware {
            HardwareReport::Tdx(td_report) => *td_report,
            other => {
                return Err(AzureError::WrongHardware {
                    expected: "tdx",
                    found: other.kind(),
                })
            }
        };
        let quote = verify_quote(&runtime, quote, expected_nonce)?;
        Ok(AzureTdxBinding {
            td_report,
            quote,
            runtime,
            td_quote,
        })
    }
}

/// The quote under the runtime data's AK, its bare signature wrapped as the TPMT_SIGNATURE
/// (TPM 2.0 Part 2 §11.3.4) an RSASSA/SHA-256 key produces.
fn verify_quote(
    runtime: &RuntimeData,
    quote: &VtpmQuote,
    expected_nonce: &[u8],
) -> Result<VerifiedQuote, AzureError> {
    let size = u16::try_from(quote.signature.len())
        .ok()
        .filter(|s| usize::from(*s) <= MAX_SIGNATURE_BYTES)
        .ok_or(AzureError::SignatureSize(quote.signature.len()))?;
    let mut signature = Vec::with_capacity(6 + quote.signature.len());
    signature.extend_from_slice(&TPM_ALG_RSASSA.to_be_bytes());
    signature.extend_from_slice(&TPM_ALG_SHA256.to_be_bytes());
    signature.extend_from_slice(&size.to_be_bytes());
    signature.extend_from_slice(&quote.signature);
    crate::tpm::verify_quote_with_key(
        &quote.attest,
        &signature,
        runtime.ak(),
        &quote.pcrs,
        expected_nonce,
    )
    .map_err(AzureError::Quote)
}
