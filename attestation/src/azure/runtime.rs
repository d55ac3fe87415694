//! Evidence role: the HCL report's runtime data ("var data"), the JSON document whose
//! SHA-256 the paravisor puts in the hardware report's report data. It carries the vTPM's
//! attestation key as a JWK (RFC 7517, `kid` `HCLAkPub`), the VM configuration the paravisor
//! was launched with, and `user-data` (hex; the report data the guest asked for).
//!
//! Parsed once into typed values: unknown members are ignored, a repeated member is refused
//! (serde's derived structs do both), and the AK must appear exactly once as an RSA key.

use super::AzureError;
use crate::tpm::AkPublic;
use serde::Deserialize;

/// The `kid` of the vTPM attestation key.
pub const AK_KEY_ID: &str = "HCLAkPub";

#[derive(Deserialize)]
struct RawRuntimeData {
    keys: Vec<RawJwk>,
    #[serde(rename = "vm-configuration")]
    vm_configuration: Option<RawVmConfiguration>,
    #[serde(rename = "user-data")]
    user_data: Option<String>,
}

#[derive(Deserialize)]
struct RawJwk {
    kid: Option<String>,
    kty: String,
    n: Option<String>,
    e: Option<String>,
}

#[derive(Deserialize)]
struct RawVmConfiguration {
    #[serde(rename = "console-enabled")]
    console_enabled: Option<bool>,
    #[serde(rename = "secure-boot")]
    secure_boot: Option<bool>,
    #[serde(rename = "tpm-enabled")]
    tpm_enabled: Option<bool>,
    #[serde(rename = "tpm-persisted")]
    tpm_persisted: Option<bool>,
    #[serde(rename = "root-cert-thumbprint")]
    root_cert_thumbprint: Option<String>,
    #[serde(rename = "vmUniqueId")]
    vm_unique_id: Option<String>,
}

/// The VM configuration the paravisor reports (each member as present in the JSON).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VmConfiguration {
    /// `console-enabled`: the serial console is reachable.
    pub console_enabled: Option<bool>,
    /// `secure-boot`: UEFI Secure Boot is on.
    pub secure_boot: Option<bool>,
    /// `tpm-enabled`.
    pub tpm_enabled: Option<bool>,
    /// `tpm-persisted`: the vTPM state survives reboots.
    pub tpm_persisted: Option<bool>,
    /// `root-cert-thumbprint`.
    pub root_cert_thumbprint: Option<String>,
    /// `vmUniqueId`.
    pub vm_unique_id: Option<String>,
}

/// The runtime data, parsed. Nothing in it is trusted until the hardware report that hashes it
/// is verified (see [`super::UnverifiedHclReport`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeData {
    ak: AkPublic,
    ak_modulus: Vec<u8>,
    ak_exponent: Vec<u8>,
    vm_configuration: Option<VmConfiguration>,
    user_data: Option<Vec<u8>>,
}

impl RuntimeData {
    /// Parses the JSON document.
    pub fn parse(bytes: &[u8]) -> Result<Self, AzureError> {
        let raw: RawRuntimeData =
            serde_json::from_slice(bytes).map_err(AzureError::RuntimeDataJson)?;
        let mut aks = raw
            .keys
            .iter()
            .filter(|k| k.kid.as_deref() == Some(AK_KEY_ID));
        let ak = match (aks.next(), aks.next()) {
            (Some(ak), None) => ak,
            (None, _) => return Err(AzureError::AkMissing),
            (Some(_), Some(_)) => return Err(AzureError::AkDuplicated),
        };
        if ak.kty != "RSA" {
            return Err(AzureError::AkNotRsa);
        }
        let field = |v: &Option<String>, name: &'static str| {
            v.as_deref()
                .and_then(base64url)
                .ok_or(AzureError::AkEncoding(name))
        };
        let ak_modulus = field(&ak.n, "n")?;
        let ak_exponent = field(&ak.e, "e")?;
        let ak =
            AkPublic::from_rsa_components(&ak_modulus, &ak_exponent).map_err(AzureError::AkKey)?;
        let user_data = raw
            .user_data
            .map(|hex| hex::decode(hex).map_err(|_| AzureError::UserDataEncoding))
            .transpose()?;
        let vm_configuration = raw.vm_configuration.map(|c| VmConfiguration {
            console_enabled: c.console_enabled,
            secure_boot: c.secure_boot,
            tpm_enabled: c.tpm_enabled,
            tpm_persisted: c.tpm_persisted,
            root_cert_thumbprint: c.root_cert_thumbprint,
            vm_unique_id: c.vm_unique_id,
        });
        Ok(Self {
            ak,
            ak_modulus,
            ak_exponent,
            vm_configuration,
            user_data,
        })
    }

    /// The vTPM attestation key.
    pub fn ak(&self) -> &AkPublic {
        &self.ak
    }
    /// The AK's modulus and public exponent, big-endian, as the JWK gives them.
    pub fn ak_components(&self) -> (&[u8], &[u8]) {
        (&self.ak_modulus, &self.ak_exponent)
    }
    /// `vm-configuration`, when present.
    pub fn vm_configuration(&self) -> Option<&VmConfiguration> {
        self.vm_configuration.as_ref()
    }
    /// `user-data`, decoded from hex, when present.
    pub fn user_data(&self) -> Option<&[u8]> {
        self.user_data.as_deref()
    }
}

/// Decodes unpadded base64url (RFC 4648 §5, as JWK members use it, RFC 7515 §2). Refuses
/// padding, other alphabets and non-zero trailing bits, so each key has one encoding.
fn base64url(text: &str) -> Option<Vec<u8>> {
    fn value(c: u8) -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'-' => Some(62),
            b'_' => Some(63),
            _ => None,
        }
    }
    let bytes = text.as_bytes();
    if bytes.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3 + 2);
    for chunk in bytes.chunks(4) {
        let mut acc = 0u32;
        for c in chunk {
            acc = (acc << 6) | value(*c)?;
        }
        // A chunk of n characters carries 6n bits, of which 8(n-1) are data.
        let bits = 6 * chunk.len();
        let data_bits = 8 * (chunk.len() - 1);
        let spare = bits - data_bits;
        if acc & ((1 << spare) - 1) != 0 {
            return None;
        }
        let data = acc >> spare;
        let be = data.to_be_bytes();
        out.extend_from_slice(be.get(4 - (chunk.len() - 1)..)?);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_is_strict() {
        assert_eq!(base64url("AQAB"), Some(vec![1, 0, 1]));
        assert_eq!(base64url(""), Some(vec![]));
        assert_eq!(base64url("_-8"), Some(vec![0xff, 0xef]));
        assert_eq!(base64url("AQ"), Some(vec![1]));
        assert_eq!(base64url("AR"), None, "non-zero trailing bits");
        assert_eq!(base64url("AQ=="), None, "padding");
        assert_eq!(base64url("A+/B"), None, "standard alphabet");
        assert_eq!(base64url("AQABA"), None, "impossible length");
    }

    fn jwk(kid: &str, kty: &str) -> String {
        // 256 bytes, the first 0xc0: a 2048-bit modulus.
        let n = "w".to_string() + &"A".repeat(341);
        format!(r#"{{"kid":"{kid}","kty":"{kty}","e":"AQAB","n":"{n}"}}"#)
    }

    #[test]
    fn finds_exactly_one_rsa_ak() {
        let doc =
            |keys: &[String]| format!(r#"{{"keys":[{}],"user-data":"0aff"}}"#, keys.join(","));
        let ok =
            RuntimeData::parse(doc(&[jwk("HCLEkPub", "RSA"), jwk(AK_KEY_ID, "RSA")]).as_bytes());
        let ok = ok.unwrap();
        assert_eq!(ok.user_data(), Some(&[0x0a, 0xff][..]));
        assert_eq!(ok.ak_components().1, &[1, 0, 1]);
        assert!(ok.vm_configuration().is_none());
        assert!(matches!(
            RuntimeData::parse(doc(&[jwk("HCLEkPub", "RSA")]).as_bytes()),
            Err(AzureError::AkMissing)
        ));
        assert!(matches!(
            RuntimeData::parse(doc(&[jwk(AK_KEY_ID, "RSA"), jwk(AK_KEY_ID, "RSA")]).as_bytes()),
            Err(AzureError::AkDuplicated)
        ));
        assert!(matches!(
            RuntimeData::parse(doc(&[jwk(AK_KEY_ID, "EC")]).as_bytes()),
            Err(AzureError::AkNotRsa)
        ));
        assert!(matches!(
            RuntimeData::parse(br#"{"keys":[],"keys":[]}"#),
            Err(AzureError::RuntimeDataJson(_))
        ));
        assert!(matches!(
            RuntimeData::parse(br#"{"keys":[{"kid":"HCLAkPub","kty":"RSA","e":"AQAB"}]}"#),
            Err(AzureError::AkEncoding("n"))
        ));
    }
}
