//! An OVMF firmware image (`measure ovmf|snp|tdx --ovmf FILE`, images handed over by an
//! operator). An image that parses reports every structure; its TDVF sections either lie in
//! the image or are refused; an SNP launch digest of one vCPU either succeeds or names a check.
#![no_main]

use libfuzzer_sys::fuzz_target;
use measurements::snp::{self, vcpu::CpuSig, vmsa::VmmType, SnpInputs};
use ovmf::Ovmf;

fuzz_target!(|data: &[u8]| {
    let Ok(o) = Ovmf::parse(data.to_vec()) else {
        return;
    };
    let _ = serde_json::to_string(&o.report()).expect("a parsed image serialises");
    for (i, s) in o.tdvf().iter().flat_map(|t| t.sections.iter()).enumerate() {
        if let Ok(raw) = s.raw_data(o.bytes(), i) {
            assert_eq!(raw.len() as u64, u64::from(s.raw_data_size));
        }
    }
    // Keep the work bounded: the metadata may describe up to 4 GiB of zero pages.
    let pages: u64 = o
        .sev_metadata()
        .iter()
        .flat_map(|m| m.sections.iter())
        .map(|s| u64::from(s.size) / 4096)
        .sum();
    if pages < 4096 {
        let _ = snp::snp_launch_digest(&SnpInputs {
            ovmf: &o,
            vcpus: 2,
            vcpu_sig: CpuSig::from_type("EPYC-Milan"),
            vmm: VmmType::Qemu,
            guest_features: 1,
            hashes: None,
            ovmf_hash: Some([0u8; 48]),
        });
    }
});
