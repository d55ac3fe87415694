//! The TDX Confidential Computing Event Log: the ACPI table that locates it and the mapping of
//! its register indices onto RTMRs.
//!
//! A TD's firmware (TDVF/OVMF, td-shim) records its measurements in a TCG2 crypto-agile log
//! whose `pcrIndex` field holds a CC measurement-register index, not a PCR (UEFI 2.10
//! §38.4.1, EFI_CC_MEASUREMENT_PROTOCOL): **0 = MRTD, 1 = RTMR0, 2 = RTMR1, 3 = RTMR2,
//! 4 = RTMR3**. This is the convention of Intel's TDVF, of go-tdx-guest/go-eventlog and of
//! trustee's `eventlog` crate (which replays index `i` into `rtmr[i - 1]`); the recorded
//! vectors confirm it (their replay of indices 1-3 equals RTMR0-2 of the paired quote). MRTD is
//! the build-time measurement and is never extended at run time, so an index-0 event other than
//! `EV_NO_ACTION` (or any index above 4) makes the log unreplayable rather than being skipped.

use super::defs::*;
use super::event::{DigestAlgorithm, EventLog, EventType};
use super::reader::Reader;
use super::replay::{chains, compare, Register, ReplayError};
use super::EventLogError;

/// RTMR0..3 values.
pub type Rtmrs = [[u8; RTMR_BYTES]; RTMR_COUNT];

/// The CCEL ACPI table (ACPI 6.5 §5.2.34): where the firmware left the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CcelTable {
    revision: u8,
    oem_id: [u8; 6],
    cc_type: u8,
    cc_subtype: u8,
    log_area_minimum_length: u64,
    log_area_start_address: u64,
}

impl CcelTable {
    /// Parses the table as `/sys/firmware/acpi/tables/CCEL` holds it: the signature, a length
    /// equal to [`CCEL_TABLE_BYTES`] and to the input, and a valid checksum (ACPI 6.5 §5.2.6:
    /// all bytes sum to zero).
    pub fn parse(bytes: &[u8]) -> Result<Self, EventLogError> {
        let mut r = Reader::new(bytes);
        if r.array::<4>("CCEL.Signature")? != CCEL_SIGNATURE {
            return Err(EventLogError::CcelTable("signature is not `CCEL`"));
        }
        let length = r.u32("CCEL.Length")?;
        if usize::try_from(length).ok() != Some(CCEL_TABLE_BYTES) || bytes.len() != CCEL_TABLE_BYTES
        {
            return Err(EventLogError::CcelTable("length is not 56 bytes"));
        }
        if bytes.iter().fold(0u8, |sum, b| sum.wrapping_add(*b)) != 0 {
            return Err(EventLogError::CcelTable("checksum does not sum to zero"));
        }
        let revision = r.u8("CCEL.Revision")?;
        r.u8("CCEL.Checksum")?;
        let oem_id = r.array::<6>("CCEL.OEMID")?;
        r.take(8 + 4 + 4 + 4, "CCEL.OEM Table ID, revisions, creator")?;
        let cc_type = r.u8("CCEL.CC Type")?;
        let cc_subtype = r.u8("CCEL.CC Subtype")?;
        r.u16("CCEL.Reserved")?;
        let log_area_minimum_length = r.u64("CCEL.LAML")?;
        let log_area_start_address = r.u64("CCEL.LASA")?;
        Ok(Self {
            revision,
            oem_id,
            cc_type,
            cc_subtype,
            log_area_minimum_length,
            log_area_start_address,
        })
    }

    /// Table revision.
    pub fn revision(&self) -> u8 {
        self.revision
    }
    /// OEMID.
    pub fn oem_id(&self) -> &[u8; 6] {
        &self.oem_id
    }
    /// CC Type (2 = Intel TDX, [`CCEL_CC_TYPE_TDX`]).
    pub fn cc_type(&self) -> u8 {
        self.cc_type
    }
    /// CC Subtype.
    pub fn cc_subtype(&self) -> u8 {
        self.cc_subtype
    }
    /// LAML: bytes of the log area (the size of `/sys/firmware/acpi/tables/data/CCEL`).
    pub fn log_area_minimum_length(&self) -> u64 {
        self.log_area_minimum_length
    }
    /// LASA: guest-physical address of the log area.
    pub fn log_area_start_address(&self) -> u64 {
        self.log_area_start_address
    }
}

/// Every extending event must name RTMR0..3 (MR index 1..=4).
fn check_indices(log: &EventLog) -> Result<(), EventLogError> {
    let rtmrs = CC_MR_RTMR0..=CC_MR_RTMR3;
    for (event, e) in log.events().iter().enumerate() {
        if e.event_type() != EventType::NoAction && !rtmrs.contains(&e.pcr_index()) {
            return Err(EventLogError::CcelRegister {
                event,
                index: e.pcr_index(),
            });
        }
    }
    Ok(())
}

/// The (MR index, register) pairs of RTMR0..3.
fn rtmr_registers() -> impl Iterator<Item = (u32, Register, usize)> {
    (0u8..)
        .zip(CC_MR_RTMR0..=CC_MR_RTMR3)
        .map(|(rtmr, index)| (index, Register::Rtmr(rtmr), usize::from(rtmr)))
}

/// Replays a CCEL into RTMR0..3 (SHA-384; a register the log never extends is zero).
pub fn replay_rtmrs(log: &EventLog) -> Result<Rtmrs, EventLogError> {
    check_indices(log)?;
    let chains = chains(log, DigestAlgorithm::Sha384)?;
    let mut rtmrs = [[0u8; RTMR_BYTES]; RTMR_COUNT];
    for (index, _, slot) in rtmr_registers() {
        if let (Some(chain), Some(rtmr)) = (chains.get(&index), rtmrs.get_mut(slot)) {
            *rtmr = <[u8; RTMR_BYTES]>::try_from(chain.value()).map_err(|_| {
                EventLogError::ReplayUnsupported {
                    alg: DigestAlgorithm::Sha384,
                }
            })?;
        }
    }
    Ok(rtmrs)
}

/// Replays a CCEL and compares RTMR0..3 with `expected` (from a verified TD quote); a
/// mismatch names the RTMR as [`Register::Rtmr`] and event indices as in
/// [`super::check_against`].
pub fn check_rtmrs(log: &EventLog, expected: &Rtmrs) -> Result<(), ReplayError> {
    check_indices(log).map_err(ReplayError::Log)?;
    let chains = chains(log, DigestAlgorithm::Sha384).map_err(ReplayError::Log)?;
    compare(
        &chains,
        DigestAlgorithm::Sha384,
        rtmr_registers().filter_map(|(index, register, slot)| {
            expected
                .get(slot)
                .map(|value| (index, register, value.as_slice()))
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::super::event::tests::{event2, header};
    use super::*;

    #[test]
    fn maps_mr_index_to_rtmr_and_refuses_mrtd() {
        let mut bytes = header(&[(TPM_ALG_SHA384, 48)]);
        bytes.extend(event2(
            0,
            EV_NO_ACTION,
            &[(TPM_ALG_SHA384, vec![0; 48])],
            b"",
        ));
        bytes.extend(event2(2, 4, &[(TPM_ALG_SHA384, vec![5; 48])], b""));
        let log = EventLog::parse(&bytes).unwrap();
        let rtmrs = replay_rtmrs(&log).unwrap();
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA384);
        ctx.update(&[0; 48]);
        ctx.update(&[5; 48]);
        assert_eq!(rtmrs[1], ctx.finish().as_ref());
        assert_eq!(rtmrs[0], [0; 48]);
        check_rtmrs(&log, &rtmrs).unwrap();
        let mut wrong = rtmrs;
        wrong[1][0] ^= 1;
        let Err(ReplayError::Mismatch(m)) = check_rtmrs(&log, &wrong) else {
            panic!("expected a mismatch");
        };
        assert_eq!((m.register, m.last_event), (Register::Rtmr(1), Some(1)));

        for index in [0, 5] {
            let mut bad = bytes.clone();
            bad.extend(event2(index, 4, &[(TPM_ALG_SHA384, vec![5; 48])], b""));
            let log = EventLog::parse(&bad).unwrap();
            assert!(matches!(
                replay_rtmrs(&log),
                Err(EventLogError::CcelRegister { event: 2, index: i }) if i == index
            ));
        }
    }

    #[test]
    fn ccel_table_checks() {
        let mut t = b"CCEL".to_vec();
        t.extend(56u32.to_le_bytes());
        t.extend([1, 0]);
        t.extend(b"INTEL EDK2    ");
        t.extend([0; 12]);
        t.extend([2, 0, 0, 0]);
        t.extend(0x1000u64.to_le_bytes());
        t.extend(0xdead_0000u64.to_le_bytes());
        let sum = t.iter().fold(0u8, |s, b| s.wrapping_add(*b));
        t[9] = 0u8.wrapping_sub(sum);
        let table = CcelTable::parse(&t).unwrap();
        assert_eq!(table.cc_type(), CCEL_CC_TYPE_TDX);
        assert_eq!(table.log_area_minimum_length(), 0x1000);
        assert_eq!(table.log_area_start_address(), 0xdead_0000);
        assert_eq!(table.oem_id(), b"INTEL ");
        let mut bad = t.clone();
        bad[40] ^= 1;
        assert!(matches!(
            CcelTable::parse(&bad),
            Err(EventLogError::CcelTable(_))
        ));
        assert!(CcelTable::parse(&t[..55]).is_err());
    }
}
