//! `sev-snp-measure`'s own expected launch digests (its `tests/test_guest.py`), recomputed
//! with this crate's library, and dstack's published TDX quote checked against this crate's
//! RTMR1/RTMR2 composition.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test code: a failed expectation is a test failure"
)]

use measurements::snp::{self, hashes::SevHashes, vcpu::CpuSig, vmsa::VmmType, SnpInputs};
use measurements::tdx;
use ovmf::Ovmf;
use serde_json::Value;

fn fixture(name: &str) -> Ovmf {
    let path = format!("{}/../ovmf/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    Ovmf::parse(std::fs::read(path).unwrap()).unwrap()
}

fn unquote(s: &str) -> &str {
    s.trim_matches(|c| c == '"' || c == '\'')
}

#[test]
fn sev_snp_measure_expected_digests() {
    let text = include_str!("vectors/expected_launch_digests.json");
    let v: Value = serde_json::from_str(text).unwrap();
    let mut checked = 0;
    for case in v["cases"].as_array().unwrap() {
        let name = case["test"].as_str().unwrap();
        let args: Vec<&str> = case["args_raw"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        let extra = &args[8..];
        if args[0].contains("SVSM") || extra.iter().any(|a| a.contains("dump_vmsa")) {
            continue; // SVSM fixtures are not shipped; VMSA dumps have no digest
        }
        let ovmf = fixture(unquote(args[3].rsplit('/').next().unwrap()));
        let vcpus: u32 = args[1].parse().unwrap();
        let sig = args[2]
            .contains("EPYC-v4")
            .then(|| CpuSig::from_type("EPYC-v4").unwrap());
        let kernel = (args[4] != "None").then_some(&b""[..]);
        let initrd = (args[5] != "None").then_some(&b""[..]);
        let append = (args[6] != "None").then(|| unquote(args[6]));
        let features = u64::from_str_radix(args[7].trim_start_matches("0x"), 16).unwrap();
        let vmm = if extra.iter().any(|a| a.contains("VMMType.ec2")) {
            VmmType::Ec2
        } else if extra.iter().any(|a| a.contains("VMMType.gce")) {
            VmmType::Gce
        } else {
            VmmType::Qemu
        };
        let hashes = kernel.map(|k| SevHashes::new(k, initrd, append));
        let ovmf_hash = if extra.iter().any(|a| a.starts_with("snp_ovmf_hash_str")) {
            Some(match case["snp_ovmf_hash_str"].as_str() {
                Some(h) => <[u8; 48]>::try_from(hex::decode(h).unwrap()).unwrap(),
                None => snp::snp_ovmf_hash(&ovmf).unwrap(),
            })
        } else {
            None
        };
        let got: Result<Vec<u8>, snp::SnpError> = match args[0] {
            "SevMode.SEV_SNP" => snp::snp_launch_digest(&SnpInputs {
                ovmf: &ovmf,
                vcpus,
                vcpu_sig: sig,
                vmm,
                guest_features: features,
                hashes,
                ovmf_hash,
            })
            .map(|d| d.to_vec()),
            "SevMode.SEV_ES" => snp::seves_launch_digest(&ovmf, hashes.as_ref(), vcpus, sig, vmm)
                .map(|d| d.to_vec()),
            "SevMode.SEV" => snp::sev_launch_digest(&ovmf, hashes.as_ref()).map(|d| d.to_vec()),
            other => panic!("{name}: unknown mode {other}"),
        };
        match (
            case["expected_launch_digest"].as_str(),
            case["expected_error"].as_str(),
        ) {
            (Some(want), _) => assert_eq!(hex::encode(got.unwrap()), want, "{name}"),
            (None, Some(msg)) => assert_eq!(got.unwrap_err().to_string(), msg, "{name}"),
            _ => panic!("{name}: neither digest nor error"),
        }
        checked += 1;
    }
    assert_eq!(
        checked, 24,
        "every SNP/SEV-ES/SEV case of the vector file is checked"
    );
}

#[test]
fn snp_ovmf_hash_of_the_amdsev_fixture() {
    let h = snp::snp_ovmf_hash(&fixture("ovmf_AmdSev_suffix.bin")).unwrap();
    assert_eq!(
        hex::encode(h),
        "086e2e9149ebf45abdc3445fba5b2da8270bdbb04094d7a2c37faaa4b24af3aa16aff8c374c2a55c467a50da6d466b74"
    );
}

/// dstack publishes, for a real TD, the quote (with RTMR1/RTMR2) and the digests it fed into
/// them: the QEMU-patched kernel's Authenticode SHA-384, the measured command line's SHA-384
/// and the initrd's SHA-384. Replaying those through this crate's direct-boot event lists must
/// give the quote's registers.
#[test]
fn rtmr_composition_matches_a_real_dstack_td_quote() {
    let v: Value =
        serde_json::from_str(include_str!("vectors/dstack-tdx-lite-getquote.json")).unwrap();
    let quote = hex::decode(v["quote"].as_str().unwrap()).unwrap();
    // TD quote v4: 48-byte header, then the TD report body (Intel TDX DCAP Quote Generation
    // Library and Quote Verification Library, "TD Quote Body"): RTMR1 at 376, RTMR2 at 424.
    let rtmr1 = &quote[48 + 376..48 + 424];
    let rtmr2 = &quote[48 + 424..48 + 472];
    let vm_config: Value = serde_json::from_str(v["vm_config"].as_str().unwrap()).unwrap();
    let cbor = base64_decode(
        vm_config["tdx_measurement"]["measurement"]
            .as_str()
            .unwrap(),
    );
    let doc: ciborium::Value = ciborium::from_reader(cbor.as_slice()).unwrap();
    let image = map_get(&doc, "image");
    let digest = |k: &str| -> [u8; 48] {
        map_get(image, k)
            .as_bytes()
            .unwrap()
            .as_slice()
            .try_into()
            .unwrap()
    };
    let r1 = tdx::replay(&tdx::rtmr1_log(digest("kernel_authenticode")));
    let r2 = tdx::replay(&[digest("cmdline_sha384"), digest("initrd_sha384")]);
    assert_eq!(hex::encode(r1), hex::encode(rtmr1));
    assert_eq!(hex::encode(r2), hex::encode(rtmr2));
}

fn map_get<'a>(v: &'a ciborium::Value, key: &str) -> &'a ciborium::Value {
    v.as_map()
        .unwrap()
        .iter()
        .find(|(k, _)| k.as_text() == Some(key))
        .map(|(_, v)| v)
        .unwrap()
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}
