//! Runtime measurements against the golden measurements of the driver and VBIOS RIMs, as
//! NVIDIA's verifiers do it (nvtrust `verifier.py`): the active entries of both RIMs form one
//! table (an index active in both is an error); RIM index `i` is compared with GPU block
//! `i + 1`; a value matches when it equals one of the alternatives and has the declared size;
//! index 35 is skipped when the report says NVDEC0 is disabled. Every mismatched index is
//! reported, not just the first.

use crate::rim::{GoldenMeasurement, VerifiedRim};
use crate::spdm::defs::{NVDEC0_DISABLED, NVDEC0_RIM_INDEX};
use crate::spdm::UnverifiedGpuReport;

/// Outcome of a comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Comparison {
    /// Both RIMs have an active entry at this index.
    Conflict {
        /// RIM index.
        index: u32,
    },
    /// Comparison ran.
    Compared {
        /// Active indices compared.
        compared: usize,
        /// Indices whose runtime value matched no alternative (ascending).
        mismatched: Vec<u32>,
        /// Indices skipped (NVDEC0 disabled).
        skipped: Vec<u32>,
    },
}

fn matches(golden: &GoldenMeasurement, runtime: Option<&[u8]>) -> bool {
    runtime.is_some_and(|value| {
        u32::try_from(value.len()).ok() == Some(golden.size)
            && golden
                .alternatives
                .iter()
                .any(|alt| alt.as_slice() == value)
    })
}

/// Compares `report` with verified RIMs (normally the driver's and the VBIOS's).
pub fn compare(report: &UnverifiedGpuReport, rims: &[&VerifiedRim]) -> Comparison {
    let tables: Vec<&[GoldenMeasurement]> = rims.iter().map(|r| r.measurements()).collect();
    compare_tables(report, &tables)
}

/// The comparison over measurement tables (unit tests feed unverified tables here).
pub(crate) fn compare_tables(
    report: &UnverifiedGpuReport,
    tables: &[&[GoldenMeasurement]],
) -> Comparison {
    let mut table: Vec<&GoldenMeasurement> = Vec::new();
    for g in tables.iter().flat_map(|t| t.iter()).filter(|g| g.active) {
        if table.iter().any(|t| t.index == g.index) {
            return Comparison::Conflict { index: g.index };
        }
        table.push(g);
    }
    table.sort_by_key(|g| g.index);
    let nvdec_disabled = report.opaque().nvdec0_status() == Some(NVDEC0_DISABLED);
    let mut mismatched = Vec::new();
    let mut skipped = Vec::new();
    let mut compared = 0usize;
    for g in table {
        if g.index == NVDEC0_RIM_INDEX && nvdec_disabled {
            skipped.push(g.index);
            continue;
        }
        compared = compared.saturating_add(1);
        let runtime = g
            .index
            .checked_add(1)
            .and_then(|i| u8::try_from(i).ok())
            .and_then(|i| report.block(i))
            .map(|b| b.value.as_slice());
        if !matches(g, runtime) {
            mismatched.push(g.index);
        }
    }
    Comparison::Compared {
        compared,
        mismatched,
        skipped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rim::UnverifiedRim;

    fn vector(rel: &str) -> Vec<u8> {
        let path = format!("{}/tests/vectors/{rel}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("vector `{path}` is missing: {e}"))
    }

    /// hopper-535 against its `_measurement_mismatch` RIMs: PROVENANCE.md names VBIOS index 9
    /// and driver indices 7, 21, 22, 25-27, 29-32, 34, 37, 39-41. The driver RIM fails its
    /// digest (edited after signing), so only this unit test, on the unverified tables, can
    /// check that every mismatched index is reported.
    #[test]
    fn every_mismatched_index_is_reported() {
        let text = String::from_utf8(vector("hopper-535/hopperAttestationReport.txt")).unwrap();
        let report = UnverifiedGpuReport::parse_hex(&text).unwrap();
        let driver = UnverifiedRim::parse(&vector(
            "hopper-535/NV_GPU_DRIVER_GH100_535.86.09_measurement_mismatch.xml",
        ))
        .unwrap();
        let vbios = UnverifiedRim::parse(&vector(
            "hopper-535/NV_GPU_VBIOS_1010_0200_882_96005E0001_measurement_mismatch.xml",
        ))
        .unwrap();
        let Comparison::Compared {
            mismatched,
            skipped,
            ..
        } = compare_tables(&report, &[driver.measurements(), vbios.measurements()])
        else {
            panic!("conflict")
        };
        assert_eq!(
            mismatched,
            vec![7, 9, 21, 22, 25, 26, 27, 29, 30, 31, 32, 34, 37, 39, 40, 41]
        );
        assert_eq!(skipped, vec![35]);
        let prod = UnverifiedRim::parse(&vector(
            "nvtrust-rims/1010_0200_882_96005E0001_PROD.swidtag",
        ))
        .unwrap();
        let Comparison::Compared {
            mismatched,
            compared,
            ..
        } = compare_tables(&report, &[prod.measurements()])
        else {
            panic!("conflict")
        };
        assert_eq!((mismatched, compared), (vec![], 12));
    }

    #[test]
    fn an_index_active_in_both_rims_is_a_conflict() {
        let text = String::from_utf8(vector("hopper-535/hopperAttestationReport.txt")).unwrap();
        let report = UnverifiedGpuReport::parse_hex(&text).unwrap();
        let prod = UnverifiedRim::parse(&vector(
            "nvtrust-rims/1010_0200_882_96005E0001_PROD.swidtag",
        ))
        .unwrap();
        assert!(matches!(
            compare_tables(&report, &[prod.measurements(), prod.measurements()]),
            Comparison::Conflict { .. }
        ));
    }
}
