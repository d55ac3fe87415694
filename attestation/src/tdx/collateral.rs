//! Collateral for offline TDX verification: what Intel's PCS (or a PCCS cache) publishes for a
//! platform, in one JSON file.
//!
//! The file shape is the one `dcap-qvl` and Phala's PCCS tooling write (and what
//! `verify tdx --collateral FILE` reads):
//!
//! ```json
//! {
//!   "pck_crl_issuer_chain": "-----BEGIN CERTIFICATE-----…",   // PEM
//!   "root_ca_crl": "3082…",                                     // DER, hex
//!   "pck_crl": "3082…",                                         // DER, hex
//!   "tcb_info_issuer_chain": "-----BEGIN CERTIFICATE-----…",  // PEM
//!   "tcb_info": "{\"id\":\"TDX\",…}",                          // the signed JSON text, verbatim
//!   "tcb_info_signature": "02…",                                // r ‖ s, hex
//!   "qe_identity_issuer_chain": "-----BEGIN CERTIFICATE-----…",
//!   "qe_identity": "{\"id\":\"TD_QE\",…}",
//!   "qe_identity_signature": "d6…"
//! }
//! ```
//!
//! [`Collateral::from_pcs_responses`] builds the same thing from raw PCS API responses
//! (`{"tcbInfo":{…},"signature":"…"}`), keeping the signed body byte-for-byte.

use super::error::TdxError;

/// Collateral for one quote's platform.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Collateral {
    /// PEM issuer chain of the PCK CRL.
    pub pck_crl_issuer_chain: String,
    /// Intel SGX Root CA CRL (DER, hex in JSON).
    #[serde(with = "hex_vec")]
    pub root_ca_crl: Vec<u8>,
    /// PCK (platform or processor) CA CRL (DER, hex in JSON).
    #[serde(with = "hex_vec")]
    pub pck_crl: Vec<u8>,
    /// PEM issuer chain of the TCB info (TCB signing certificate + root).
    pub tcb_info_issuer_chain: String,
    /// The signed TCB info JSON text.
    pub tcb_info: String,
    /// ECDSA P-256 signature over `tcb_info` (r ‖ s, hex in JSON).
    #[serde(with = "hex_vec")]
    pub tcb_info_signature: Vec<u8>,
    /// PEM issuer chain of the QE identity.
    pub qe_identity_issuer_chain: String,
    /// The signed QE identity JSON text.
    pub qe_identity: String,
    /// ECDSA P-256 signature over `qe_identity` (r ‖ s, hex in JSON).
    #[serde(with = "hex_vec")]
    pub qe_identity_signature: Vec<u8>,
}

/// Validity window and identity of the collateral, read from its signed bodies.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CollateralInfo {
    /// TCB info `fmspc`.
    pub fmspc: String,
    /// TCB info `issueDate`.
    pub tcb_info_issue_date: String,
    /// TCB info `nextUpdate`.
    pub tcb_info_next_update: String,
    /// TCB info `tcbEvaluationDataNumber`.
    pub tcb_evaluation_data_number: u64,
    /// QE identity `issueDate`.
    pub qe_identity_issue_date: String,
    /// QE identity `nextUpdate`.
    pub qe_identity_next_update: String,
}

/// Largest collateral file accepted.
pub const MAX_COLLATERAL_BYTES: usize = 4 * 1024 * 1024;

impl Collateral {
    /// Reads the JSON file shape above.
    pub fn from_json(text: &[u8]) -> Result<Self, TdxError> {
        if text.len() > MAX_COLLATERAL_BYTES {
            return Err(TdxError::CollateralMalformed(format!(
                "{} bytes, more than {MAX_COLLATERAL_BYTES}",
                text.len()
            )));
        }
        serde_json::from_slice(text).map_err(|e| TdxError::CollateralMalformed(e.to_string()))
    }

    /// JSON text of this collateral (the shape [`Collateral::from_json`] reads).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Builds collateral from raw PCS responses: the TCB info response
    /// (`{"tcbInfo":{…},"signature":"…"}`), the QE identity response
    /// (`{"enclaveIdentity":{…},"signature":"…"}`), both CRLs (DER) and the PEM issuer chains
    /// (PCS sends those as HTTP headers).
    pub fn from_pcs_responses(
        tcb_info_response: &str,
        qe_identity_response: &str,
        pck_crl_der: Vec<u8>,
        root_ca_crl_der: Vec<u8>,
        pck_crl_issuer_chain: String,
        signing_issuer_chain: String,
    ) -> Result<Self, TdxError> {
        let (tcb_info, tcb_info_signature) = split_signed(tcb_info_response, "tcbInfo")?;
        let (qe_identity, qe_identity_signature) =
            split_signed(qe_identity_response, "enclaveIdentity")?;
        Ok(Self {
            pck_crl_issuer_chain,
            root_ca_crl: root_ca_crl_der,
            pck_crl: pck_crl_der,
            tcb_info_issuer_chain: signing_issuer_chain.clone(),
            tcb_info,
            tcb_info_signature,
            qe_identity_issuer_chain: signing_issuer_chain,
            qe_identity,
            qe_identity_signature,
        })
    }

    /// Dates and identity from the (not yet verified) bodies, for reports.
    pub fn info(&self) -> Result<CollateralInfo, TdxError> {
        let tcb: serde_json::Value = serde_json::from_str(&self.tcb_info)
            .map_err(|e| TdxError::CollateralMalformed(format!("tcb_info: {e}")))?;
        let qe: serde_json::Value = serde_json::from_str(&self.qe_identity)
            .map_err(|e| TdxError::CollateralMalformed(format!("qe_identity: {e}")))?;
        let s = |v: &serde_json::Value, k: &str| {
            v.get(k)
                .and_then(|x| x.as_str())
                .unwrap_or_default()
                .to_string()
        };
        Ok(CollateralInfo {
            fmspc: s(&tcb, "fmspc"),
            tcb_info_issue_date: s(&tcb, "issueDate"),
            tcb_info_next_update: s(&tcb, "nextUpdate"),
            tcb_evaluation_data_number: tcb
                .get("tcbEvaluationDataNumber")
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0),
            qe_identity_issue_date: s(&qe, "issueDate"),
            qe_identity_next_update: s(&qe, "nextUpdate"),
        })
    }

    pub(crate) fn to_dcap(&self) -> dcap_qvl::QuoteCollateralV3 {
        dcap_qvl::QuoteCollateralV3 {
            pck_crl_issuer_chain: self.pck_crl_issuer_chain.clone(),
            root_ca_crl: self.root_ca_crl.clone(),
            pck_crl: self.pck_crl.clone(),
            tcb_info_issuer_chain: self.tcb_info_issuer_chain.clone(),
            tcb_info: self.tcb_info.clone(),
            tcb_info_signature: self.tcb_info_signature.clone(),
            qe_identity_issuer_chain: self.qe_identity_issuer_chain.clone(),
            qe_identity: self.qe_identity.clone(),
            qe_identity_signature: self.qe_identity_signature.clone(),
            pck_certificate_chain: None,
        }
    }
}

/// Splits `{"<key>":{…},"signature":"hex"}` into the verbatim body text and the signature.
fn split_signed(response: &str, key: &str) -> Result<(String, Vec<u8>), TdxError> {
    let value: serde_json::Value = serde_json::from_str(response)
        .map_err(|e| TdxError::CollateralMalformed(format!("{key} response: {e}")))?;
    let sig_hex = value
        .get("signature")
        .and_then(|s| s.as_str())
        .ok_or_else(|| TdxError::CollateralMalformed(format!("{key} response has no signature")))?;
    let signature = hex::decode(sig_hex)
        .map_err(|e| TdxError::CollateralMalformed(format!("{key} signature: {e}")))?;
    // The signature covers the body's exact bytes, so cut them out of the text rather than
    // re-serialising the parsed value.
    let marker = format!("\"{key}\":");
    let start = response
        .find(&marker)
        .map(|i| i.saturating_add(marker.len()))
        .ok_or_else(|| TdxError::CollateralMalformed(format!("no `{key}` member")))?;
    let rest = response
        .get(start..)
        .ok_or_else(|| TdxError::CollateralMalformed(format!("no `{key}` body")))?;
    let end = balanced_object_end(rest)
        .ok_or_else(|| TdxError::CollateralMalformed(format!("`{key}` body is not an object")))?;
    let body = rest
        .get(..end)
        .ok_or_else(|| TdxError::CollateralMalformed(format!("`{key}` body is cut")))?;
    Ok((body.to_string(), signature))
}

/// Length of the JSON object at the start of `s` (after optional whitespace).
fn balanced_object_end(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut started = false;
    for (i, c) in s.char_indices() {
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '{' => {
                depth = depth.saturating_add(1);
                started = true;
            }
            '}' => {
                depth = depth.checked_sub(1)?;
                if started && depth == 0 {
                    return Some(i.saturating_add(1));
                }
            }
            c if !started && !c.is_whitespace() => return None,
            _ => {}
        }
    }
    None
}

mod hex_vec {
    pub fn serialize<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text: String = serde::Deserialize::deserialize(d)?;
        hex::decode(text.trim()).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_keeps_body_verbatim() {
        let r = r#"{"tcbInfo":{"a":"}\"{","b":[1,2]},"signature":"0a0b"}"#;
        let (body, sig) = split_signed(r, "tcbInfo").unwrap();
        assert_eq!(body, r#"{"a":"}\"{","b":[1,2]}"#);
        assert_eq!(sig, vec![0x0a, 0x0b]);
    }

    #[test]
    fn missing_signature_is_typed() {
        let r = r#"{"tcbInfo":{"a":1}}"#;
        assert!(matches!(
            split_signed(r, "tcbInfo"),
            Err(TdxError::CollateralMalformed(_))
        ));
    }
}
