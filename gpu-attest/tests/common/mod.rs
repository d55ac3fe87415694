//! Vector loading shared by the integration tests. A missing vector fails the test, naming
//! the file; nothing is skipped.

#![allow(dead_code, reason = "each test binary uses a different subset")]
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a missing or malformed vector must stop the test loudly"
)]

use base64::Engine as _;
use gpu_attest::GpuNonce;
use std::path::PathBuf;

/// 2025-06-01T00:00:00Z: inside the validity window of every certificate the positive
/// vectors carry (the 550.90.07 RIM leaves expire 2026-02-22 and 2026-06-01).
pub const NOW: i64 = 1_748_736_000;

/// Nonce of the nvtrust / trustee / go-nvattest-tools H100 sample (PROVENANCE.md).
pub const NONCE_550: &str = "931d8dd0add203ac3d8b4fbde75e115278eefcdceac5b87671a748f32364dfcb";
/// Nonce of attestation-sdk hopper-default.
pub const NONCE_DEFAULT: &str = "5bb22e377702d4e1e8215a903ba094826b9ac7f731dee1fe8102958bf2840aca";
/// Nonce of attestation-sdk hopper-535.
pub const NONCE_535: &str = "27a328247bf7935c993341cf587be6f05986ccce4fe7ba2c54100bd616a58f66";
/// Nonce of the attestation-sdk JSON evidence (except cert_hold).
pub const NONCE_JSON: &str = "e97b23a1718095a0e9e35edca810768c70a6a5a389b705e753b197912bc11576";
/// Nonce of the go-nvattest-tools Blackwell MPT evidence.
pub const NONCE_MPT: &str = "cdb72201e569085d6de41863745f6f77db1f75962c29564ec6abe91f0221861f";
/// Nonce of the go-nvattest-tools PPCIe evidence.
pub const NONCE_PPCIE: &str = "1234567890123456789012345678901234567890123456789012345678901234";

pub fn vector(rel: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors")
        .join(rel);
    std::fs::read(&path)
        .map_err(|e| format!("gpu vector `{}` is missing: {e}", path.display()))
        .unwrap()
}

pub fn text(rel: &str) -> String {
    String::from_utf8(vector(rel)).unwrap()
}

pub fn nonce(hex_text: &str) -> GpuNonce {
    GpuNonce(hex::decode(hex_text).unwrap().try_into().unwrap())
}

/// One GPU's evidence as the JSON vectors carry it.
#[derive(Debug, Clone)]
pub struct JsonGpu {
    pub report: Vec<u8>,
    pub chain_pem: String,
    pub nonce: GpuNonce,
}

fn b64(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .unwrap_or_else(|e| panic!("bad base64 in a vector: {e}"))
}

/// attestation-sdk `[{arch, certificate (b64 PEM), evidence (b64 SPDM), nonce}]`.
pub fn sdk_json(rel: &str) -> Vec<JsonGpu> {
    let v: serde_json::Value =
        serde_json::from_slice(&vector(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    v.as_array()
        .unwrap_or_else(|| panic!("{rel}: not an array"))
        .iter()
        .map(|e| JsonGpu {
            report: b64(e["evidence"].as_str().unwrap_or_default()),
            chain_pem: String::from_utf8(b64(e["certificate"].as_str().unwrap_or_default()))
                .unwrap_or_default(),
            nonce: nonce(e["nonce"].as_str().unwrap_or_default()),
        })
        .collect()
}

/// go-nvattest-tools `{gpus: [{AttestationReport: {py/b64}, CertificateChains:
/// {GpuAttestationCertificateChain: [{pem: b64}]}}]}` (MPT and PPCIe files).
pub fn go_json(rel: &str, nonce_hex: &str) -> Vec<(String, String, JsonGpu)> {
    let v: serde_json::Value =
        serde_json::from_slice(&vector(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    v["gpus"]
        .as_array()
        .unwrap_or_else(|| panic!("{rel}: no gpus"))
        .iter()
        .map(|g| {
            let pem: String = g["CertificateChains"]["GpuAttestationCertificateChain"]
                .as_array()
                .unwrap_or_else(|| panic!("{rel}: no chain"))
                .iter()
                .map(|c| {
                    String::from_utf8(b64(c["pem"].as_str().unwrap_or_default()))
                        .unwrap_or_default()
                })
                .collect();
            (
                g["DriverVersion"].as_str().unwrap_or_default().to_owned(),
                g["VbiosVersion"].as_str().unwrap_or_default().to_owned(),
                JsonGpu {
                    report: b64(g["AttestationReport"]["py/b64"]
                        .as_str()
                        .unwrap_or_default()),
                    chain_pem: pem,
                    nonce: nonce(nonce_hex),
                },
            )
        })
        .collect()
}
