//! Azure confidential VMs (paravisor vTPM) against real vectors: HCL reports with SEV-SNP and
//! TDX hardware reports, their vTPM quotes, VCEKs and a TD quote, from Confidential
//! Containers' trustee and Microsoft's azure-cvm-tooling. Provenance, licenses and expected
//! outcomes: `tests/vectors/azure/PROVENANCE.md`. A missing vector file fails the test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test code: a failed expectation is a test failure"
)]

use attestation::azure::{AzureError, HardwareReport, UnverifiedHclReport, VtpmQuote};
use attestation::snp::{Product, SnpError};
use attestation::tpm::{PcrValue, TpmError};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use std::path::PathBuf;

fn read(rel: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors")
        .join(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("vector `{}` is missing: {e}", path.display()))
}

/// The first certificate of a PEM file, as DER.
fn first_pem_der(rel: &str) -> Vec<u8> {
    let text = String::from_utf8(read(rel)).unwrap();
    let b64: String = text
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    B64.decode(b64).unwrap()
}

fn indexed(values: Vec<Vec<u8>>) -> Vec<PcrValue> {
    (0u8..)
        .zip(values)
        .map(|(index, digest)| PcrValue { index, digest })
        .collect()
}

/// trustee `tpm-quote-v1.json`: hex message, signature and PCRs.
fn json_quote(rel: &str) -> VtpmQuote {
    let json: serde_json::Value = serde_json::from_slice(&read(rel)).unwrap();
    let hex = |v: &serde_json::Value| hex::decode(v.as_str().unwrap()).unwrap();
    VtpmQuote {
        attest: hex(&json["message"]),
        signature: hex(&json["signature"]),
        pcrs: indexed(json["pcrs"].as_array().unwrap().iter().map(hex).collect()),
    }
}

/// az-cvm-vtpm `quote.bin`: bincode `Quote { signature, message, pcrs }` (u64le lengths).
fn bincode_quote(rel: &str) -> VtpmQuote {
    let bytes = read(rel);
    let mut at = 0usize;
    let u64le = |at: &mut usize| {
        let v = u64::from_le_bytes(bytes[*at..*at + 8].try_into().unwrap());
        *at += 8;
        usize::try_from(v).unwrap()
    };
    let sig_len = u64le(&mut at);
    let signature = bytes[at..at + sig_len].to_vec();
    at += sig_len;
    let msg_len = u64le(&mut at);
    let attest = bytes[at..at + msg_len].to_vec();
    at += msg_len;
    let count = u64le(&mut at);
    let pcrs = (0..count)
        .map(|i| bytes[at + 32 * i..at + 32 * (i + 1)].to_vec())
        .collect();
    assert_eq!(at + 32 * count, bytes.len());
    VtpmQuote {
        attest,
        signature,
        pcrs: indexed(pcrs),
    }
}

/// A `derived-evidence-*` directory: `tpm-quote.msg`, `tpm-quote.sig`, `pcrs-sha256.txt`.
fn derived_quote(dir: &str) -> VtpmQuote {
    let text = String::from_utf8(read(&format!("{dir}/pcrs-sha256.txt"))).unwrap();
    let pcrs = text
        .lines()
        .map(|l| hex::decode(l.split(": ").nth(1).unwrap()).unwrap())
        .collect();
    VtpmQuote {
        attest: read(&format!("{dir}/tpm-quote.msg")),
        signature: read(&format!("{dir}/tpm-quote.sig")),
        pcrs: indexed(pcrs),
    }
}

const CHALLENGE: &[u8] = b"challenge";

/// TPMS_ATTEST.extraData (TCG TPM 2.0 Part 2 §10.12.12): after the magic, the type and the
/// TPM2B qualifiedSigner.
fn extra_data(attest: &[u8]) -> Vec<u8> {
    let signer = usize::from(u16::from_be_bytes([attest[6], attest[7]]));
    let at = 8 + signer;
    let len = usize::from(u16::from_be_bytes([attest[at], attest[at + 1]]));
    attest[at + 2..at + 2 + len].to_vec()
}

fn parse(rel: &str) -> UnverifiedHclReport {
    UnverifiedHclReport::parse(&read(rel)).unwrap()
}

#[test]
fn trustee_snp_report_verifies_from_the_amd_root_to_the_vtpm_quote() {
    let report = read("azure/trustee-az-snp/hcl-report.bin");
    let vcek = first_pem_der("azure/trustee-az-snp/vcek.pem");
    for quote in [
        json_quote("azure/trustee-az-snp/tpm-quote-v1.json"),
        bincode_quote("azure/trustee-az-snp/quote.bin"),
    ] {
        let parsed = UnverifiedHclReport::parse(&report).unwrap();
        let runtime = parsed.runtime_data_bytes().to_vec();
        let verified = parsed
            .verify_snp(&vcek, Some(Product::Milan), &quote, CHALLENGE)
            .unwrap();
        assert_eq!(verified.snp().product(), Product::Milan);
        assert_eq!(verified.snp().vmpl(), 0);
        assert_eq!(
            &verified.snp().report_data()[..32],
            &attestation::sha256(&runtime)
        );
        assert_eq!(&verified.snp().report_data()[32..], &[0; 32]);
        assert_eq!(verified.quote().pcrs().len(), 24);
        let config = verified.runtime_data().vm_configuration().unwrap();
        assert_eq!(config.secure_boot, Some(true));
        assert_eq!(config.tpm_enabled, Some(true));
    }
}

#[test]
fn trustee_snp_derived_evidence_verifies() {
    for (dir, vcek, product) in [
        ("v0", "vcek.pem", Product::Milan),
        ("v1", "vcek.der", Product::Milan),
        ("v2", "vcek.der", Product::Milan),
        ("genoa", "vcek.pem", Product::Genoa),
    ] {
        let name = dir;
        let dir = format!("azure/trustee-az-snp/derived-evidence-{dir}");
        let vcek = if vcek.ends_with(".pem") {
            first_pem_der(&format!("{dir}/{vcek}"))
        } else {
            read(&format!("{dir}/{vcek}"))
        };
        let parsed = parse(&format!("{dir}/hcl-report.bin"));
        let quote = derived_quote(&dir);
        let user_data = parsed.runtime_data().user_data().unwrap().to_vec();
        let nonce = match name {
            "v0" | "v1" => CHALLENGE.to_vec(),
            // The guest also put the quote's 48-byte nonce in the runtime data's `user-data`,
            // so the SNP report binds it too.
            "v2" => {
                assert_eq!(&user_data[48..], &[0; 16]);
                user_data[..48].to_vec()
            }
            // The source does not publish this nonce: take it from the quote itself.
            _ => {
                assert!(user_data.iter().all(|b| *b == 0));
                extra_data(&quote.attest)
            }
        };
        assert!(matches!(
            parse(&format!("{dir}/hcl-report.bin")).verify_snp(&vcek, None, &quote, b"other"),
            Err(AzureError::Quote(TpmError::QualifyingDataMismatch))
        ));
        let verified = parsed
            .verify_snp(&vcek, None, &quote, &nonce)
            .map_err(|e| format!("{dir}: {e:?}"))
            .unwrap();
        assert_eq!(verified.snp().product(), product, "{dir}");
        assert_eq!(verified.snp().version(), 3, "{dir}");
    }
}

#[test]
fn quotes_without_their_ak_or_nonce_are_refused() {
    let report = read("azure/trustee-az-snp/hcl-report.bin");
    let vcek = first_pem_der("azure/trustee-az-snp/vcek.pem");
    let verify = |quote: &VtpmQuote, nonce: &[u8]| {
        UnverifiedHclReport::parse(&report)
            .unwrap()
            .verify_snp(&vcek, None, quote, nonce)
    };
    // `tpm-quote.msg`/`.sig` are not signed by this report's AK (PROVENANCE: unpaired).
    let mut unpaired = json_quote("azure/trustee-az-snp/tpm-quote-v1.json");
    unpaired.attest = read("azure/trustee-az-snp/tpm-quote.msg");
    unpaired.signature = read("azure/trustee-az-snp/tpm-quote.sig");
    assert!(matches!(
        verify(&unpaired, CHALLENGE),
        Err(AzureError::Quote(TpmError::SignatureInvalid))
    ));
    // The TDX VM's quote, under this SNP VM's AK.
    assert!(matches!(
        verify(
            &json_quote("azure/trustee-az-tdx/tpm-quote-v1.json"),
            CHALLENGE
        ),
        Err(AzureError::Quote(TpmError::SignatureInvalid))
    ));
    let good = json_quote("azure/trustee-az-snp/tpm-quote-v1.json");
    assert!(matches!(
        verify(&good, b"egnellahc"),
        Err(AzureError::Quote(TpmError::QualifyingDataMismatch))
    ));
    let mut pcrs = good.clone();
    pcrs.pcrs[7].digest[0] ^= 1;
    assert!(matches!(
        verify(&pcrs, CHALLENGE),
        Err(AzureError::Quote(TpmError::PcrDigestMismatch))
    ));
    let mut long = good;
    long.signature = vec![0; 513];
    assert!(matches!(
        verify(&long, CHALLENGE),
        Err(AzureError::SignatureSize(513))
    ));
}

#[test]
fn kinvolk_snp_report_binds_but_its_shipped_vcek_is_another_chips() {
    let parsed = parse("azure/kinvolk-az-cvm-vtpm/hcl-report-snp.bin");
    assert!(matches!(parsed.hardware(), HardwareReport::Snp(_)));
    assert_eq!(parsed.version(), 1);
    parsed.check_runtime_data_binding().unwrap();
    assert!(parsed.runtime_data().user_data().is_none());
    // certs.pem holds a Milan VCEK whose HWID is not this report's CHIP_ID: the report
    // signature does not verify under it.
    let vcek = first_pem_der("azure/kinvolk-az-cvm-vtpm/certs.pem");
    let quote = bincode_quote("tpm/kinvolk-az-cvm-vtpm/quote.bin");
    assert!(matches!(
        parsed.verify_snp(&vcek, Some(Product::Milan), &quote, CHALLENGE),
        Err(AzureError::Snp(SnpError::BadReportSignature))
    ));
}

/// REPORTDATA of a v4 TD quote: the 48-byte header, then the TD report body at whose offset
/// 520 REPORTDATA sits.
const TD_QUOTE_REPORT_DATA: usize = 48 + 520;

#[test]
fn trustee_tdx_report_binds_the_vtpm_quote_and_the_td_quote() {
    let td_quote = read("azure/trustee-az-tdx/td-quote.bin");
    assert_eq!(&td_quote[..2], &[4, 0], "a v4 quote");
    for (report, quote) in [
        (
            "azure/trustee-az-tdx/hcl-report.bin",
            json_quote("azure/trustee-az-tdx/tpm-quote-v1.json"),
        ),
        (
            "azure/trustee-az-tdx/hcl-report.bin",
            bincode_quote("azure/trustee-az-tdx/quote.bin"),
        ),
        (
            "azure/trustee-az-tdx/derived-evidence-v0/hcl-report.bin",
            derived_quote("azure/trustee-az-tdx/derived-evidence-v0"),
        ),
    ] {
        let binding = parse(report)
            .bind_tdx(td_quote.clone(), &quote, CHALLENGE)
            .unwrap();
        assert_eq!(
            &td_quote[TD_QUOTE_REPORT_DATA..TD_QUOTE_REPORT_DATA + 64],
            binding.expected_td_quote_report_data()
        );
        assert_eq!(binding.td_quote(), td_quote.as_slice());
        // The quote body repeats the TDREPORT's TDINFO: MRTD at body offset 136, RTMRs at 328.
        let td = binding.td_report();
        assert_eq!(&td_quote[48 + 136..48 + 184], td.mr_td());
        for (i, rtmr) in td.rtmr().iter().enumerate() {
            let at = 48 + 328 + 48 * i;
            assert_eq!(&td_quote[at..at + 48], rtmr);
        }
        assert_eq!(binding.quote().pcrs().len(), 24);
    }
    assert_eq!(
        read("azure/trustee-az-tdx/derived-evidence-v0/td-quote.bin"),
        td_quote
    );
}

#[test]
fn kinvolk_tdx_report_parses_and_binds() {
    let parsed = parse("azure/kinvolk-az-cvm-vtpm/hcl-report-tdx.bin");
    let HardwareReport::Tdx(td) = parsed.hardware() else {
        panic!("a tdx report");
    };
    assert_eq!(td.report_version(), 0);
    assert_eq!(parsed.version(), 2);
    parsed.check_runtime_data_binding().unwrap();
    assert_eq!(parsed.runtime_data().ak_components().0.len(), 256);
    assert_eq!(
        parsed
            .runtime_data()
            .vm_configuration()
            .unwrap()
            .secure_boot,
        Some(false)
    );
}

#[test]
fn the_wrong_hardware_path_is_refused() {
    let quote = json_quote("azure/trustee-az-tdx/tpm-quote-v1.json");
    let vcek = first_pem_der("azure/trustee-az-snp/vcek.pem");
    assert!(matches!(
        parse("azure/trustee-az-tdx/hcl-report.bin").verify_snp(&vcek, None, &quote, CHALLENGE),
        Err(AzureError::WrongHardware {
            expected: "sev-snp",
            found: "tdx"
        })
    ));
    let quote = json_quote("azure/trustee-az-snp/tpm-quote-v1.json");
    assert!(matches!(
        parse("azure/trustee-az-snp/hcl-report.bin").bind_tdx(Vec::new(), &quote, CHALLENGE),
        Err(AzureError::WrongHardware {
            expected: "tdx",
            found: "sev-snp"
        })
    ));
}

#[test]
fn framing_errors_are_typed() {
    let report = read("azure/trustee-az-tdx/hcl-report.bin");
    for len in [0, 3, 31, 1215, 1235, 1300, 2436] {
        assert!(
            matches!(
                UnverifiedHclReport::parse(&report[..len]),
                Err(AzureError::Truncated { .. })
            ),
            "cut at {len}"
        );
    }
    let set = |at: usize, value: u32| {
        let mut bad = report.clone();
        bad[at..at + 4].copy_from_slice(&value.to_le_bytes());
        UnverifiedHclReport::parse(&bad)
    };
    assert!(matches!(set(0, 0), Err(AzureError::NotHclReport)));
    assert!(matches!(
        set(4, 3),
        Err(AzureError::UnsupportedVersion { what: "header", .. })
    ));
    assert!(matches!(set(8, 2438), Err(AzureError::SizeMismatch(_))));
    assert!(matches!(
        set(12, 1),
        Err(AzureError::UnsupportedRequestType(1))
    ));
    assert!(matches!(set(16, 1), Err(AzureError::HclStatus(1))));
    assert!(matches!(set(1216, 1), Err(AzureError::SizeMismatch(_))));
    assert!(matches!(
        set(1220, 2),
        Err(AzureError::UnsupportedVersion {
            what: "request data",
            ..
        })
    ));
    assert!(matches!(
        set(1224, 5),
        Err(AzureError::UnsupportedReportType(5))
    ));
    assert!(matches!(
        set(1224, 2),
        Err(AzureError::Snp(SnpError::UnsupportedVersion { .. }))
    ));
    assert!(matches!(
        set(1228, 0),
        Err(AzureError::UnsupportedHashType(0))
    ));
    let mut tail = report.clone();
    tail[2599] = 1;
    assert!(matches!(
        UnverifiedHclReport::parse(&tail),
        Err(AzureError::NonZeroPadding(_))
    ));
}

/// Where a flip cannot be detected offline in a TDX HCL report: CPUSVN and the MAC of the
/// TDREPORT (covered only by the CPU's MAC key; the TD quote carries neither), and
/// REPORTTYPE.VERSION 0 → 1 (both are valid versions).
fn tdx_unauthenticated(at: usize, flip: u8) -> bool {
    let td = at.wrapping_sub(32);
    (16..32).contains(&td) || (224..256).contains(&td) || (td == 2 && flip == 0x01)
}

/// Every single-byte change of the TDX HCL report, of the vTPM quote and of its signature
/// gives a typed error, except in the TDREPORT fields nothing offline authenticates (where the
/// change shows in the parsed report). Every truncation inside the report is an error.
#[test]
fn byte_flip_sweep_tdx() {
    let report = read("azure/trustee-az-tdx/hcl-report.bin");
    let td_quote = read("azure/trustee-az-tdx/td-quote.bin");
    let quote = json_quote("azure/trustee-az-tdx/tpm-quote-v1.json");
    let bind = |report: &[u8], quote: &VtpmQuote| {
        UnverifiedHclReport::parse(report)?.bind_tdx(td_quote.clone(), quote, CHALLENGE)
    };
    let original = bind(&report, &quote).unwrap();
    for at in 0..report.len() {
        for flip in [0x01u8, 0x80] {
            let mut bad = report.clone();
            bad[at] ^= flip;
            match bind(&bad, &quote) {
                Err(_) => {}
                Ok(b) if tdx_unauthenticated(at, flip) => {
                    assert_ne!(b.td_report(), original.td_report(), "byte {at}");
                }
                Ok(_) => panic!("report byte {at} ^ {flip:#x} verified"),
            }
        }
    }
    // The report is 2437 bytes; the rest of the 2600-byte NV index is zero padding.
    for len in 0..report.len() {
        let result = bind(&report[..len], &quote);
        if len < 2437 {
            assert!(result.is_err(), "cut at {len}");
        } else {
            assert_eq!(result.unwrap().td_report(), original.td_report());
        }
    }
    for at in 0..quote.attest.len() {
        let mut bad = quote.clone();
        bad.attest[at] ^= 0x01;
        assert!(bind(&report, &bad).is_err(), "quote byte {at}");
    }
    for at in 0..quote.signature.len() {
        let mut bad = quote.clone();
        bad.signature[at] ^= 0x01;
        assert!(
            matches!(
                bind(&report, &bad),
                Err(AzureError::Quote(TpmError::SignatureInvalid))
            ),
            "signature byte {at}"
        );
    }
}

/// Runtime data of the SNP HCL report: every byte change breaks the binding (or the JSON),
/// before any signature is checked.
#[test]
fn byte_flip_sweep_snp_runtime_data() {
    let report = read("azure/trustee-az-snp/hcl-report.bin");
    let vcek = first_pem_der("azure/trustee-az-snp/vcek.pem");
    let quote = json_quote("azure/trustee-az-snp/tpm-quote-v1.json");
    let runtime_len = UnverifiedHclReport::parse(&report)
        .unwrap()
        .runtime_data_bytes()
        .len();
    for at in 1236..1236 + runtime_len {
        let mut bad = report.clone();
        bad[at] ^= 0x01;
        let result = UnverifiedHclReport::parse(&bad)
            .and_then(|r| r.verify_snp(&vcek, Some(Product::Milan), &quote, CHALLENGE));
        assert!(
            matches!(
                result,
                Err(AzureError::RuntimeDataBinding { .. }
                    | AzureError::RuntimeDataJson(_)
                    | AzureError::AkEncoding(_)
                    | AzureError::AkMissing
                    | AzureError::AkNotRsa
                    | AzureError::UserDataEncoding)
            ),
            "runtime data byte {at}: {result:?}"
        );
    }
}

/// The SNP report inside the HCL report: a change in the signed region or the signature is a
/// signature failure; a change in REPORT_DATA breaks the binding first. Samples every 7th
/// byte (each check verifies the VCEK chain and a P-384 signature).
#[test]
fn byte_flip_sweep_snp_report() {
    let report = read("azure/trustee-az-snp/hcl-report.bin");
    let vcek = first_pem_der("azure/trustee-az-snp/vcek.pem");
    let quote = json_quote("azure/trustee-az-snp/tpm-quote-v1.json");
    for at in (32..32 + 1184).step_by(7) {
        let mut bad = report.clone();
        bad[at] ^= 0x01;
        let result = UnverifiedHclReport::parse(&bad)
            .and_then(|r| r.verify_snp(&vcek, Some(Product::Milan), &quote, CHALLENGE));
        assert!(result.is_err(), "snp report byte {at}");
    }
}
