//! An Azure paravisor HCL report (header, SEV-SNP report or TDREPORT, runtime data JSON),
//! framing and the runtime-data binding check; the runtime data and TDREPORT parsers alone.
#![no_main]

use attestation::azure::{RuntimeData, TdReportStruct, UnverifiedHclReport};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = RuntimeData::parse(data);
    let _ = TdReportStruct::parse(data);
    if let Ok(report) = UnverifiedHclReport::parse(data) {
        let _ = report.check_runtime_data_binding();
        assert!(report.runtime_data_bytes().len() < data.len());
    }
});
