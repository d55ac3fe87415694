//! A GPU attestation report: SPDM 1.1 GET_MEASUREMENTS request ‖ MEASUREMENTS response
//! (DSP0274 §10.11) with NVIDIA opaque data, framing and typed opaque fields, binary and hex.
#![no_main]

use gpu_attest::UnverifiedGpuReport;
use libfuzzer_sys::fuzz_target;

fn exercise(r: &UnverifiedGpuReport) {
    let o = r.opaque();
    let _ = (
        o.driver_version(),
        o.vbios_version(),
        o.fwid(),
        o.chip_sku(),
    );
    let _ = (
        o.project(),
        o.project_sku(),
        o.chip_info(),
        o.nvdec0_status(),
    );
    assert!(r.signed_bytes().len() + 96 == r.raw().len());
    for b in r.blocks() {
        assert!(r.block(b.index).is_some());
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = UnverifiedGpuReport::parse(data) {
        exercise(&r);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(r) = UnverifiedGpuReport::parse_hex(text) {
            exercise(&r);
        }
    }
});
