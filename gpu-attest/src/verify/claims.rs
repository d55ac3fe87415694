//! The appraisal result for one GPU, shaped like an IETF EAR submodule (draft-ietf-rats-ear):
//! an overall status tier and one claim per check, each with its own tier and a reason.

use serde::Serialize;

/// EAR trustworthiness tiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// No claim is made (the check was not required, or could not run after an earlier one
    /// failed; in the latter case another claim is contraindicated).
    None,
    /// The check passed.
    Affirming,
    /// The check passed with a reservation.
    Warning,
    /// The check failed.
    Contraindicated,
}

/// One check and its outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Claim {
    /// Stable name of the check (`report-format`, `device-chain`, `fwid`, `report-signature`,
    /// `nonce`, `driver-version`, `vbios-version`, `driver-rim`, `vbios-rim`, `measurements`,
    /// or `rim-input-N` for a RIM argument that matched neither version).
    pub name: String,
    /// Outcome.
    pub status: Tier,
    /// Why, in words (lowercase, user data in backticks).
    pub reason: String,
}

impl Claim {
    pub(crate) fn new(name: &str, status: Tier, reason: impl Into<String>) -> Self {
        Self {
            name: name.to_owned(),
            status,
            reason: reason.into(),
        }
    }
}

/// What the report says about the GPU (from the opaque data and the device chain).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GpuIdentity {
    /// Subject of the device certificate that signed the report (unique per GPU).
    pub device_subject: Option<String>,
    /// Driver version from the opaque data.
    pub driver_version: Option<String>,
    /// VBIOS version from the opaque data.
    pub vbios_version: Option<String>,
    /// Project, project SKU and chip SKU (`1010`, `0200`, `882`).
    pub project: Option<String>,
    /// Project SKU.
    pub project_sku: Option<String>,
    /// Chip SKU.
    pub chip_sku: Option<String>,
    /// The requester nonce, hex.
    pub nonce: Option<String>,
    /// The report FWID, hex.
    pub fwid: Option<String>,
}

/// The appraisal of one GPU's evidence.
///
/// JSON (`serde_json::to_string`), field by field:
///
/// ```json
/// {
///   "status": "affirming",              // "affirming" | "warning" | "contraindicated"
///   "gpu": {                            // null fields where the report did not say
///     "device_subject": "CN=GH100 A01 GSP FMC LF,…",
///     "driver_version": "550.90.07",
///     "vbios_version": "96.00.9f.00.01",
///     "project": "1010", "project_sku": "0200", "chip_sku": "882",
///     "nonce": "931d8dd0…dfcb",
///     "fwid": "f5c384ae…f75d"
///   },
///   "claims": [
///     { "name": "report-format", "status": "affirming", "reason": "…" },
///     { "name": "device-chain", … }, { "name": "fwid", … }, { "name": "report-signature", … },
///     { "name": "nonce", … }, { "name": "driver-version", … }, { "name": "vbios-version", … },
///     { "name": "driver-rim", … }, { "name": "vbios-rim", … }, { "name": "measurements", … }
///   ],
///   "mismatched_indices": []            // RIM indices (0-based) whose value matched no alternative
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GpuAppraisal {
    /// Overall tier: contraindicated if any claim is, else warning if any claim is, else
    /// affirming.
    pub status: Tier,
    /// What the report says about the GPU.
    pub gpu: GpuIdentity,
    /// Every check, in the order run.
    pub claims: Vec<Claim>,
    /// RIM indices whose runtime value matched none of the alternatives, ascending.
    pub mismatched_indices: Vec<u32>,
}

impl GpuAppraisal {
    pub(crate) fn from_claims(
        gpu: GpuIdentity,
        claims: Vec<Claim>,
        mismatched_indices: Vec<u32>,
    ) -> Self {
        let status = if claims.iter().any(|c| c.status == Tier::Contraindicated) {
            Tier::Contraindicated
        } else if claims.iter().any(|c| c.status == Tier::Warning) {
            Tier::Warning
        } else {
            Tier::Affirming
        };
        Self {
            status,
            gpu,
            claims,
            mismatched_indices,
        }
    }

    /// Whether this GPU may be trusted: the overall tier is affirming.
    pub fn affirming(&self) -> bool {
        self.status == Tier::Affirming
    }

    /// The claim named `name`.
    pub fn claim(&self, name: &str) -> Option<&Claim> {
        self.claims.iter().find(|c| c.name == name)
    }

    /// JSON text of the appraisal (see the type's documentation for the shape).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| {
            format!("{{\"status\":\"contraindicated\",\"error\":\"serialisation failed: {e}\"}}")
        })
    }
}

/// The verdict on all GPUs of one evidence bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "kebab-case")]
pub enum GpuBundleVerdict {
    /// The bundle carries no GPU evidence and none was expected: policy decides.
    NoGpuEvidence,
    /// Every expected GPU has an affirming appraisal, each from a distinct device.
    AllAffirming {
        /// GPUs appraised.
        gpus: usize,
    },
    /// Fewer affirming, distinct GPUs than expected.
    NotAffirming {
        /// Affirming appraisals from distinct devices.
        affirming: usize,
        /// GPUs the bundle or policy expects.
        expected: usize,
    },
}

/// A bundle with `expected_gpus` GPUs needs that many affirming appraisals, from as many
/// distinct device certificates.
pub fn bundle_verdict(appraisals: &[GpuAppraisal], expected_gpus: usize) -> GpuBundleVerdict {
    if expected_gpus == 0 && appraisals.is_empty() {
        return GpuBundleVerdict::NoGpuEvidence;
    }
    let mut devices: Vec<&str> = appraisals
        .iter()
        .filter(|a| a.affirming())
        .filter_map(|a| a.gpu.device_subject.as_deref())
        .collect();
    devices.sort_unstable();
    devices.dedup();
    let affirming = devices.len();
    if affirming == expected_gpus && appraisals.len() == expected_gpus {
        GpuBundleVerdict::AllAffirming {
            gpus: expected_gpus,
        }
    } else {
        GpuBundleVerdict::NotAffirming {
            affirming,
            expected: expected_gpus,
        }
    }
}
