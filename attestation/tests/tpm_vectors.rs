//! The TPM quote verifier against quotes captured on real (v)TPMs: Confidential Containers'
//! trustee sample, an Azure confidential VM vTPM (kinvolk/azure-cvm-tooling) and a Google
//! Compute Engine Shielded VM vTPM (go-tpm-tools). Provenance and licenses:
//! `tests/vectors/tpm/PROVENANCE.md`. A missing vector file fails the test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test code: a failed expectation is a test failure"
)]

use attestation::tpm::{
    verify, verify_quote_with_key, AkPublic, PcrValue, TpmError, TpmEvidence, UnverifiedQuote,
};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use std::path::PathBuf;

fn read(rel: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors/tpm")
        .join(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("vector `{}` is missing: {e}", path.display()))
}

/// Builds a TPMT_SIGNATURE (TCG Part 2 §11.3.4) for a bare RSASSA-PKCS1v1.5/SHA-256 signature,
/// as azure-cvm-tooling does before verifying.
fn rsassa_sha256(sig: &[u8]) -> Vec<u8> {
    let mut t = vec![0x00, 0x14, 0x00, 0x0b];
    t.extend_from_slice(&u16::try_from(sig.len()).unwrap().to_be_bytes());
    t.extend_from_slice(sig);
    t
}

fn indexed(values: Vec<Vec<u8>>) -> Vec<PcrValue> {
    (0u8..)
        .zip(values)
        .map(|(index, digest)| PcrValue { index, digest })
        .collect()
}

/// A quote with everything `verify_quote_with_key` needs.
#[derive(Clone)]
struct Vector {
    attest: Vec<u8>,
    signature: Vec<u8>,
    ak: AkPublic,
    pcrs: Vec<PcrValue>,
    qualifying_data: Vec<u8>,
}

impl Vector {
    fn verify(&self) -> Result<attestation::tpm::VerifiedQuote, TpmError> {
        verify_quote_with_key(
            &self.attest,
            &self.signature,
            &self.ak,
            &self.pcrs,
            &self.qualifying_data,
        )
    }
}

/// trustee `tpm_evidence.json`: base64 SPKI AK, base64 TPMS_ATTEST and TPMT_SIGNATURE, hex
/// SHA-256 PCRs 0-23.
fn trustee() -> Vector {
    let json: serde_json::Value =
        serde_json::from_slice(&read("trustee-tpm-evidence/tpm_evidence.json")).unwrap();
    let b64 = |v: &serde_json::Value| B64.decode(v.as_str().unwrap()).unwrap();
    let quote = &json["tpm_quote"];
    let pcrs = quote["pcrs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| hex::decode(p.as_str().unwrap()).unwrap())
        .collect();
    Vector {
        attest: b64(&quote["message"]),
        signature: b64(&quote["signature"]),
        ak: AkPublic::from_rsa_spki_der(&b64(&json["ak_public"])).unwrap(),
        pcrs: indexed(pcrs),
        // The extraData the sample carries (the source checks signature and PCR digest only).
        qualifying_data: hex::decode(
            "a04182b506878d4f29b91ee606a71a0d3361ccf1b22db20c98adcaa537bea393\
             ef0e41a18b3569ab678f1497fbc5c12000000000000000000000000000000000",
        )
        .unwrap(),
    }
}

/// azure-cvm-tooling `quote.bin`: bincode `Quote { signature, message, pcrs }` (u64le lengths).
fn azure() -> Vector {
    let bytes = read("kinvolk-az-cvm-vtpm/quote.bin");
    let mut at = 0usize;
    let u64le = |at: &mut usize| {
        let v = u64::from_le_bytes(bytes[*at..*at + 8].try_into().unwrap());
        *at += 8;
        usize::try_from(v).unwrap()
    };
    let sig_len = u64le(&mut at);
    let sig = bytes[at..at + sig_len].to_vec();
    at += sig_len;
    let msg_len = u64le(&mut at);
    let msg = bytes[at..at + msg_len].to_vec();
    at += msg_len;
    let count = u64le(&mut at);
    let pcrs = (0..count)
        .map(|i| bytes[at + 32 * i..at + 32 * (i + 1)].to_vec())
        .collect();
    assert_eq!(at + 32 * count, bytes.len());

    let pem = String::from_utf8(read("kinvolk-az-cvm-vtpm/akpub.pem")).unwrap();
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    Vector {
        attest: msg,
        signature: rsassa_sha256(&sig),
        ak: AkPublic::from_rsa_spki_der(&B64.decode(b64).unwrap()).unwrap(),
        pcrs: indexed(pcrs),
        qualifying_data: b"challenge".to_vec(),
    }
}

/// Reads a protobuf varint.
fn varint(bytes: &[u8], at: &mut usize) -> u64 {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = bytes[*at];
        *at += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            break;
        }
    }
    v
}

/// go-tpm-tools `Pcrs { hash = 1; map<uint32, bytes> pcrs = 2 }`; returns (hash, values).
fn gce_pcrs(bytes: &[u8]) -> (u64, Vec<PcrValue>) {
    let (mut at, mut hash, mut pcrs) = (0, 0, Vec::new());
    while at < bytes.len() {
        match varint(bytes, &mut at) {
            0x08 => hash = varint(bytes, &mut at),
            0x12 => {
                let len = usize::try_from(varint(bytes, &mut at)).unwrap();
                let entry = &bytes[at..at + len];
                at += len;
                let (mut e, mut index, mut digest) = (0, 0u8, Vec::new());
                while e < entry.len() {
                    match varint(entry, &mut e) {
                        0x08 => index = u8::try_from(varint(entry, &mut e)).unwrap(),
                        0x12 => {
                            let l = usize::try_from(varint(entry, &mut e)).unwrap();
                            digest = entry[e..e + l].to_vec();
                            e += l;
                        }
                        tag => panic!("unexpected map entry tag {tag}"),
                    }
                }
                pcrs.push(PcrValue { index, digest });
            }
            tag => panic!("unexpected Pcrs tag {tag}"),
        }
    }
    (hash, pcrs)
}

/// go-tpm-tools GCE attestation, SHA-256 bank quote (the second of three).
fn gce(dir: &str, qualifying_data: &[u8]) -> (Vec<u8>, Vector) {
    let ak_public = read(&format!("go-tpm-tools-gce/{dir}/field1.bin"));
    let (hash, pcrs) = gce_pcrs(&read(&format!("go-tpm-tools-gce/{dir}/quote1_field3.bin")));
    assert_eq!(hash, 0x0b, "quote 1 is the SHA-256 bank");
    let vector = Vector {
        attest: read(&format!("go-tpm-tools-gce/{dir}/quote1_field1.bin")),
        signature: read(&format!("go-tpm-tools-gce/{dir}/quote1_field2.bin")),
        ak: AkPublic::from_tpmt_public(&ak_public).unwrap(),
        pcrs,
        qualifying_data: qualifying_data.to_vec(),
    };
    (ak_public, vector)
}

#[test]
fn trustee_sample_verifies() {
    let v = trustee();
    let quote = v.verify().unwrap();
    assert_eq!(quote.pcrs().len(), 24);
    assert_eq!(quote.pcrs()[&17], [0xff; 32]);
}

#[test]
fn azure_vtpm_quote_verifies_with_nonce_challenge() {
    let v = azure();
    let quote = v.verify().unwrap();
    assert_eq!(quote.pcrs().len(), 24);
    let wrong = Vector {
        qualifying_data: vec![1, 2, 3, 4],
        ..azure()
    };
    assert!(matches!(
        wrong.verify(),
        Err(TpmError::QualifyingDataMismatch)
    ));
    // The source's negative case: the signature bytes reversed.
    let mut reversed = azure();
    reversed.signature[6..].reverse();
    assert!(matches!(reversed.verify(), Err(TpmError::SignatureInvalid)));
}

#[test]
fn gce_quotes_verify_as_tpm_evidence() {
    for (dir, nonce) in [
        ("decoded-gce-cos-85-nonce9009", &[0x90, 0x09][..]),
        ("decoded-gce-cos-85-no-nonce", &[][..]),
    ] {
        let (ak_public, v) = gce(dir, nonce);
        let quote = v.verify().unwrap();
        assert_eq!(quote.pcrs().len(), 24, "{dir}");
        assert_eq!(quote.ak_public_digest(), attestation::sha256(&ak_public));

        // The same quote through the evidence item path the appraisal uses.
        let evidence = TpmEvidence {
            ak_public,
            attest: v.attest.clone(),
            signature: v.signature.clone(),
            pcrs: v.pcrs.clone(),
            event_log: None,
        };
        let item = evidence.to_item().unwrap();
        let decoded = TpmEvidence::from_item_data(&item.data).unwrap();
        assert_eq!(verify(&decoded, nonce).unwrap(), quote);
        assert!(matches!(
            verify(&decoded, b"other"),
            Err(TpmError::QualifyingDataMismatch)
        ));
    }
}

#[test]
fn real_pcr_value_changed_is_rejected() {
    let mut v = trustee();
    v.pcrs[0].digest[0] ^= 1;
    assert!(matches!(v.verify(), Err(TpmError::PcrDigestMismatch)));
    let mut v = azure();
    v.pcrs.truncate(16);
    assert!(matches!(v.verify(), Err(TpmError::PcrSelectionMismatch)));
}

#[test]
fn dstack_attest_parses() {
    let attest = read("dstack-sample/tpm_quote_sample.bin");
    assert_eq!(attest.len(), 117);
    UnverifiedQuote::parse(&attest).unwrap();
    let mut trailing = attest.clone();
    trailing.push(0);
    assert!(matches!(
        UnverifiedQuote::parse(&trailing),
        Err(TpmError::TrailingBytes { count: 1, .. })
    ));
}

/// Every single-bit flip and every truncation of the signed structures gives a typed error,
/// never a panic and never Ok.
fn sweep(v: &Vector) {
    v.verify().unwrap();
    let with = |attest: &[u8], signature: &[u8]| {
        verify_quote_with_key(attest, signature, &v.ak, &v.pcrs, &v.qualifying_data)
    };
    for byte in 0..v.attest.len() {
        for bit in 0..8 {
            let mut bad = v.attest.clone();
            bad[byte] ^= 1 << bit;
            assert!(
                with(&bad, &v.signature).is_err(),
                "attest byte {byte} bit {bit}"
            );
        }
    }
    for byte in 0..v.signature.len() {
        for bit in 0..8 {
            let mut bad = v.signature.clone();
            bad[byte] ^= 1 << bit;
            assert!(
                with(&v.attest, &bad).is_err(),
                "signature byte {byte} bit {bit}"
            );
        }
    }
    for len in 0..v.attest.len() {
        assert!(
            with(&v.attest[..len], &v.signature).is_err(),
            "attest cut at {len}"
        );
    }
    for len in 0..v.signature.len() {
        assert!(
            with(&v.attest, &v.signature[..len]).is_err(),
            "signature cut at {len}"
        );
    }
    let mut long = v.attest.clone();
    long.push(0);
    assert!(matches!(
        with(&long, &v.signature),
        Err(TpmError::TrailingBytes { .. })
    ));
    let mut long = v.signature.clone();
    long.push(0);
    assert!(matches!(
        with(&v.attest, &long),
        Err(TpmError::TrailingBytes { .. })
    ));
}

#[test]
fn bit_flip_and_truncation_sweep_gce() {
    sweep(&gce("decoded-gce-cos-85-nonce9009", &[0x90, 0x09]).1);
}

#[test]
fn bit_flip_and_truncation_sweep_trustee() {
    sweep(&trustee());
}

#[test]
fn gce_ak_public_area_is_a_restricted_signing_key() {
    let ak_public = read("go-tpm-tools-gce/decoded-gce-cos-85-nonce9009/field1.bin");
    AkPublic::from_tpmt_public(&ak_public).unwrap();
    // objectAttributes is bytes 4..8; clear `restricted` (bit 16).
    let mut unrestricted = ak_public.clone();
    unrestricted[5] &= !0x01;
    assert!(matches!(
        AkPublic::from_tpmt_public(&unrestricted),
        Err(TpmError::AkNotRestrictedSigning)
    ));
    for len in 0..ak_public.len() {
        assert!(AkPublic::from_tpmt_public(&ak_public[..len]).is_err());
    }
}
