//! Reference values (RATS "reference value provider" role): what an operator expects a
//! kernel's evidence to show, in one JSON file that `verify --reference FILE` and the verifier
//! service load. `measure reference --image DIR` writes it; the schema is documented in
//! `docs/reference-values.md`. Every section and field is optional: an absent expectation
//! gives a claim with tier `none` ("not checked"), never a silent pass.
//!
//! ```json
//! {
//!   "snp": { "measurements": ["<96 hex>"], "host_data": "<64 hex>", "id_key_digests": [],
//!            "author_key_digests": [], "allow_debug": false, "allow_smt": true,
//!            "allow_migration_agent": false, "max_vmpl": 0,
//!            "min_tcb": { "bootloader": 3, "tee": 0, "snp": 8, "microcode": 115 } },
//!   "tdx": { "mrtd": ["<96 hex>"], "rtmr": [null, null, "<96 hex>", null],
//!            "mr_config_id": null, "mr_owner": null, "mr_owner_config": null,
//!            "allow_debug": false, "accepted_tcb_status": ["UpToDate"],
//!            "rejected_advisories": [] },
//!   "tpm": { "pcrs": { "0": "<64 hex>", "7": "<64 hex>" } }
//! }
//! ```

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Largest reference file accepted.
pub const MAX_REFERENCE_BYTES: usize = 1024 * 1024;

/// All reference values for one kernel image.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReferenceValues {
    /// SEV-SNP expectations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snp: Option<SnpReference>,
    /// TDX expectations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tdx: Option<TdxReference>,
    /// vTPM expectations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm: Option<TpmReference>,
}

/// Minimum SEV-SNP TCB (each component at least this SPL).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MinTcb {
    /// Boot loader SPL.
    #[serde(default)]
    pub bootloader: u8,
    /// PSP OS (TEE) SPL.
    #[serde(default)]
    pub tee: u8,
    /// SNP firmware SPL.
    #[serde(default)]
    pub snp: u8,
    /// Microcode SPL.
    #[serde(default)]
    pub microcode: u8,
    /// FMC SPL (Turin).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fmc: Option<u8>,
}

fn yes() -> bool {
    true
}

/// SEV-SNP reference values and guest-policy rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnpReference {
    /// Acceptable launch measurements (any of), hex.
    #[serde(default)]
    pub measurements: Vec<String>,
    /// Expected HOST_DATA, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_data: Option<String>,
    /// Acceptable ID_KEY_DIGEST values, hex.
    #[serde(default)]
    pub id_key_digests: Vec<String>,
    /// Acceptable AUTHOR_KEY_DIGEST values, hex.
    #[serde(default)]
    pub author_key_digests: Vec<String>,
    /// Accept a guest policy with DEBUG allowed (never for production).
    #[serde(default)]
    pub allow_debug: bool,
    /// Accept a guest policy that allows SMT.
    #[serde(default = "yes")]
    pub allow_smt: bool,
    /// Accept a guest policy that allows a migration agent.
    #[serde(default)]
    pub allow_migration_agent: bool,
    /// Highest VMPL the report may come from.
    #[serde(default)]
    pub max_vmpl: u32,
    /// Minimum reported TCB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_tcb: Option<MinTcb>,
}

impl Default for SnpReference {
    fn default() -> Self {
        Self {
            measurements: Vec::new(),
            host_data: None,
            id_key_digests: Vec::new(),
            author_key_digests: Vec::new(),
            allow_debug: false,
            allow_smt: true,
            allow_migration_agent: false,
            max_vmpl: 0,
            min_tcb: None,
        }
    }
}

fn up_to_date() -> Vec<String> {
    vec!["UpToDate".to_string()]
}

/// TDX reference values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TdxReference {
    /// Acceptable MRTD values (any of), hex.
    #[serde(default)]
    pub mrtd: Vec<String>,
    /// Expected RTMR0..3 (null = not checked), hex.
    #[serde(default)]
    pub rtmr: [Option<String>; 4],
    /// Expected MRCONFIGID, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mr_config_id: Option<String>,
    /// Expected MROWNER, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mr_owner: Option<String>,
    /// Expected MROWNERCONFIG, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mr_owner_config: Option<String>,
    /// Accept TDATTRIBUTES.DEBUG.
    #[serde(default)]
    pub allow_debug: bool,
    /// TCB statuses that are acceptable (Intel's names).
    #[serde(default = "up_to_date")]
    pub accepted_tcb_status: Vec<String>,
    /// Advisories that make the platform unacceptable whatever its status.
    #[serde(default)]
    pub rejected_advisories: Vec<String>,
}

impl Default for TdxReference {
    fn default() -> Self {
        Self {
            mrtd: Vec::new(),
            rtmr: [None, None, None, None],
            mr_config_id: None,
            mr_owner: None,
            mr_owner_config: None,
            allow_debug: false,
            accepted_tcb_status: up_to_date(),
            rejected_advisories: Vec::new(),
        }
    }
}

/// vTPM reference values.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TpmReference {
    /// Expected SHA-256 PCR values by index, hex.
    #[serde(default)]
    pub pcrs: BTreeMap<u8, String>,
}

/// Why a reference file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    /// Not the JSON shape above.
    #[error("reference values are malformed: {0}")]
    Malformed(String),
    /// A digest that is not hex of the right length.
    #[error("reference value `{field}` is not {bytes} bytes of hex")]
    BadDigest {
        /// Field.
        field: String,
        /// Expected length.
        bytes: usize,
    },
}

fn check_hex(field: &str, value: &str, bytes: usize) -> Result<(), ReferenceError> {
    match hex::decode(value) {
        Ok(v) if v.len() == bytes => Ok(()),
        _ => Err(ReferenceError::BadDigest {
            field: field.to_string(),
            bytes,
        }),
    }
}

impl ReferenceValues {
    /// Parses and checks every digest's length.
    pub fn from_json(text: &[u8]) -> Result<Self, ReferenceError> {
        if text.len() > MAX_REFERENCE_BYTES {
            return Err(ReferenceError::Malformed("file too large".into()));
        }
        let r: Self =
            serde_json::from_slice(text).map_err(|e| ReferenceError::Malformed(e.to_string()))?;
        if let Some(s) = &r.snp {
            for m in &s.measurements {
                check_hex("snp.measurements", m, 48)?;
            }
            if let Some(h) = &s.host_data {
                check_hex("snp.host_data", h, 32)?;
            }
            for d in s.id_key_digests.iter().chain(&s.author_key_digests) {
                check_hex("snp.id/author_key_digests", d, 48)?;
            }
        }
        if let Some(t) = &r.tdx {
            for m in &t.mrtd {
                check_hex("tdx.mrtd", m, 48)?;
            }
            for (i, m) in t.rtmr.iter().enumerate() {
                if let Some(m) = m {
                    check_hex(&format!("tdx.rtmr[{i}]"), m, 48)?;
                }
            }
            for (f, v) in [
                ("tdx.mr_config_id", &t.mr_config_id),
                ("tdx.mr_owner", &t.mr_owner),
                ("tdx.mr_owner_config", &t.mr_owner_config),
            ] {
                if let Some(v) = v {
                    check_hex(f, v, 48)?;
                }
            }
        }
        if let Some(t) = &r.tpm {
            for (i, v) in &t.pcrs {
                check_hex(&format!("tpm.pcrs[{i}]"), v, 32)?;
            }
        }
        Ok(r)
    }
}

/// Case-insensitive hex comparison of a measured value with a reference.
pub fn hex_eq(measured: &[u8], reference: &str) -> bool {
    hex::decode(reference.trim()).is_ok_and(|r| r == measured)
}
