//! A TCG2 crypto-agile event log (TPM `binary_bios_measurements` or a TDX CCEL) and the CCEL
//! ACPI table. A log that parses replays in each of its banks, and its replay checks against
//! itself; its padding is never longer than the input.
#![no_main]

use attestation::eventlog::{
    check_against, check_rtmrs, replay, replay_rtmrs, CcelTable, EventLog,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = CcelTable::parse(data);
    let Ok(log) = EventLog::parse(data) else {
        return;
    };
    assert!(log.trailing_bytes() <= data.len());
    for alg in log.spec_id().algorithms() {
        if let Ok(values) = replay(&log, *alg) {
            check_against(&log, *alg, &values).expect("a log checks against its own replay");
        }
    }
    if let Ok(rtmrs) = replay_rtmrs(&log) {
        check_rtmrs(&log, &rtmrs).expect("a ccel checks against its own rtmrs");
    }
});
