//! Evidence role: framing of a TCG2 crypto-agile event log into typed events.
//!
//! Layout (PFP §10.2): one TCG_PCR_EVENT (SHA-1 format) carrying the TCG_EfiSpecIdEvent
//! header, then TCG_PCR_EVENT2 entries until the input ends or, at an event boundary, at least
//! [`MIN_PADDING_BYTES`] of `0x00` or `0xFF` start the padding of a fixed-size buffer; the
//! whole padding must then be that byte. Every length is checked against the bytes that remain
//! before anything is copied, so memory stays proportional to the input.

use super::defs::*;
use super::reader::Reader;
use super::EventLogError;

/// A digest algorithm a crypto-agile log may carry (TCG Algorithm Registry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DigestAlgorithm {
    /// `TPM_ALG_SHA1` (20 bytes).
    Sha1,
    /// `TPM_ALG_SHA256` (32 bytes).
    Sha256,
    /// `TPM_ALG_SHA384` (48 bytes): the TDX RTMR bank.
    Sha384,
    /// `TPM_ALG_SHA512` (64 bytes).
    Sha512,
    /// `TPM_ALG_SM3_256` (32 bytes): parsed, but [`super::replay()`] cannot compute it.
    Sm3_256,
}

impl DigestAlgorithm {
    /// The algorithm with TPM_ALG_ID `id`, if it is one of the above.
    pub fn from_tpm_alg(id: u16) -> Option<Self> {
        match id {
            TPM_ALG_SHA1 => Some(Self::Sha1),
            TPM_ALG_SHA256 => Some(Self::Sha256),
            TPM_ALG_SHA384 => Some(Self::Sha384),
            TPM_ALG_SHA512 => Some(Self::Sha512),
            TPM_ALG_SM3_256 => Some(Self::Sm3_256),
            _ => None,
        }
    }

    /// The TPM_ALG_ID.
    pub fn tpm_alg(self) -> u16 {
        match self {
            Self::Sha1 => TPM_ALG_SHA1,
            Self::Sha256 => TPM_ALG_SHA256,
            Self::Sha384 => TPM_ALG_SHA384,
            Self::Sha512 => TPM_ALG_SHA512,
            Self::Sm3_256 => TPM_ALG_SM3_256,
        }
    }

    /// Bytes of a digest.
    pub fn digest_bytes(self) -> usize {
        match self {
            Self::Sha1 => 20,
            Self::Sha256 | Self::Sm3_256 => 32,
            Self::Sha384 => 48,
            Self::Sha512 => 64,
        }
    }
}

impl std::fmt::Display for DigestAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Sha1 => "sha-1",
            Self::Sha256 => "sha-256",
            Self::Sha384 => "sha-384",
            Self::Sha512 => "sha-512",
            Self::Sm3_256 => "sm3-256",
        })
    }
}

macro_rules! event_types {
    ($($variant:ident = $value:literal, $name:literal;)*) => {
        /// An event type (PFP §10.4.1, Table 9; UEFI types from `EV_EFI_EVENT_BASE`), with
        /// the types this crate does not name kept as their number.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum EventType {
            $(
                #[doc = concat!("`", $name, "` (", stringify!($value), ").")]
                $variant,
            )*
            /// Any other value.
            Unknown(u32),
        }

        impl EventType {
            /// The type of the `eventType` field `value`.
            pub fn from_u32(value: u32) -> Self {
                match value {
                    $($value => Self::$variant,)*
                    other => Self::Unknown(other),
                }
            }

            /// The `eventType` field value.
            pub fn as_u32(self) -> u32 {
                match self {
                    $(Self::$variant => $value,)*
                    Self::Unknown(value) => value,
                }
            }

            /// The specification's name (`EV_…`), or `None` for [`EventType::Unknown`].
            pub fn name(self) -> Option<&'static str> {
                match self {
                    $(Self::$variant => Some($name),)*
                    Self::Unknown(_) => None,
                }
            }
        }
    };
}

event_types! {
    PrebootCert = 0x0000_0000, "EV_PREBOOT_CERT";
    PostCode = 0x0000_0001, "EV_POST_CODE";
    Unused = 0x0000_0002, "EV_UNUSED";
    NoAction = 0x0000_0003, "EV_NO_ACTION";
    Separator = 0x0000_0004, "EV_SEPARATOR";
    Action = 0x0000_0005, "EV_ACTION";
    EventTag = 0x0000_0006, "EV_EVENT_TAG";
    SCrtmContents = 0x0000_0007, "EV_S_CRTM_CONTENTS";
    SCrtmVersion = 0x0000_0008, "EV_S_CRTM_VERSION";
    CpuMicrocode = 0x0000_0009, "EV_CPU_MICROCODE";
    PlatformConfigFlags = 0x0000_000a, "EV_PLATFORM_CONFIG_FLAGS";
    TableOfDevices = 0x0000_000b, "EV_TABLE_OF_DEVICES";
    CompactHash = 0x0000_000c, "EV_COMPACT_HASH";
    Ipl = 0x0000_000d, "EV_IPL";
    IplPartitionData = 0x0000_000e, "EV_IPL_PARTITION_DATA";
    NonhostCode = 0x0000_000f, "EV_NONHOST_CODE";
    NonhostConfig = 0x0000_0010, "EV_NONHOST_CONFIG";
    NonhostInfo = 0x0000_0011, "EV_NONHOST_INFO";
    OmitBootDeviceEvents = 0x0000_0012, "EV_OMIT_BOOT_DEVICE_EVENTS";
    EfiEventBase = 0x8000_0000, "EV_EFI_EVENT_BASE";
    EfiVariableDriverConfig = 0x8000_0001, "EV_EFI_VARIABLE_DRIVER_CONFIG";
    EfiVariableBoot = 0x8000_0002, "EV_EFI_VARIABLE_BOOT";
    EfiBootServicesApplication = 0x8000_0003, "EV_EFI_BOOT_SERVICES_APPLICATION";
    EfiBootServicesDriver = 0x8000_0004, "EV_EFI_BOOT_SERVICES_DRIVER";
    EfiRuntimeServicesDriver = 0x8000_0005, "EV_EFI_RUNTIME_SERVICES_DRIVER";
    EfiGptEvent = 0x8000_0006, "EV_EFI_GPT_EVENT";
    EfiAction = 0x8000_0007, "EV_EFI_ACTION";
    EfiPlatformFirmwareBlob = 0x8000_0008, "EV_EFI_PLATFORM_FIRMWARE_BLOB";
    EfiHandoffTables = 0x8000_0009, "EV_EFI_HANDOFF_TABLES";
    EfiPlatformFirmwareBlob2 = 0x8000_000a, "EV_EFI_PLATFORM_FIRMWARE_BLOB2";
    EfiHandoffTables2 = 0x8000_000b, "EV_EFI_HANDOFF_TABLES2";
    EfiVariableBoot2 = 0x8000_000c, "EV_EFI_VARIABLE_BOOT2";
    EfiHcrtmEvent = 0x8000_0010, "EV_EFI_HCRTM_EVENT";
    EfiVariableAuthority = 0x8000_00e0, "EV_EFI_VARIABLE_AUTHORITY";
    EfiSpdmFirmwareBlob = 0x8000_00e1, "EV_EFI_SPDM_FIRMWARE_BLOB";
    EfiSpdmFirmwareConfig = 0x8000_00e2, "EV_EFI_SPDM_FIRMWARE_CONFIG";
}

/// One algorithm's digest of an event (a TPMT_HA of the event's TPML_DIGEST_VALUES).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest {
    algorithm: DigestAlgorithm,
    value: Vec<u8>,
}

impl Digest {
    /// The algorithm.
    pub fn algorithm(&self) -> DigestAlgorithm {
        self.algorithm
    }
    /// The digest, [`DigestAlgorithm::digest_bytes`] long.
    pub fn value(&self) -> &[u8] {
        &self.value
    }
}

/// One TCG_PCR_EVENT2 (PFP §10.2.2), framing checked; nothing says its data is what its
/// digests cover (that depends on the event type) or that it was ever extended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pcr_index: u32,
    event_type: EventType,
    digests: Vec<Digest>,
    data: Vec<u8>,
}

impl Event {
    /// `pcrIndex`: the PCR for a TPM log; for a TDX CCEL, the CC measurement register index
    /// (0 = MRTD, 1 + i = RTMR i; see [`super::ccel`]).
    pub fn pcr_index(&self) -> u32 {
        self.pcr_index
    }
    /// `eventType`.
    pub fn event_type(&self) -> EventType {
        self.event_type
    }
    /// The digests, one per algorithm of the Spec ID header, in log order.
    pub fn digests(&self) -> &[Digest] {
        &self.digests
    }
    /// This event's digest in `alg`, if the log carries that bank.
    pub fn digest(&self, alg: DigestAlgorithm) -> Option<&[u8]> {
        self.digests
            .iter()
            .find(|d| d.algorithm == alg)
            .map(|d| d.value.as_slice())
    }
    /// The event data (`event[eventSize]`).
    pub fn data(&self) -> &[u8] {
        &self.data
    }
    /// The locality of a TCG_EfiStartupLocalityEvent (PFP §10.4.5.3): an `EV_NO_ACTION` event
    /// whose data is the `StartupLocality` signature and one octet.
    pub fn startup_locality(&self) -> Option<u8> {
        if self.event_type != EventType::NoAction || self.data.len() != STARTUP_LOCALITY_BYTES {
            return None;
        }
        let (signature, locality) = self.data.split_at(STARTUP_LOCALITY_SIGNATURE.len());
        match (signature == STARTUP_LOCALITY_SIGNATURE, locality) {
            (true, [locality]) => Some(*locality),
            _ => None,
        }
    }
}

/// The TCG_EfiSpecIdEvent header (PFP §10.4.5.1, Table 20).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecIdEvent {
    pcr_index: u32,
    platform_class: u32,
    spec_version: (u8, u8, u8),
    uintn_size: u8,
    algorithms: Vec<DigestAlgorithm>,
    vendor_info: Vec<u8>,
}

impl SpecIdEvent {
    /// `pcrIndex` of the header event (0 by the PFP; TDX firmware writes 0 or 1).
    pub fn pcr_index(&self) -> u32 {
        self.pcr_index
    }
    /// `platformClass` (0 = client, 1 = server).
    pub fn platform_class(&self) -> u32 {
        self.platform_class
    }
    /// (`specVersionMajor`, `specVersionMinor`, `specErrata`).
    pub fn spec_version(&self) -> (u8, u8, u8) {
        self.spec_version
    }
    /// `uintnSize`: 1 for UINT32, 2 for UINT64.
    pub fn uintn_size(&self) -> u8 {
        self.uintn_size
    }
    /// The banks every event carries a digest for, in header order.
    pub fn algorithms(&self) -> &[DigestAlgorithm] {
        &self.algorithms
    }
    /// `vendorInfo`.
    pub fn vendor_info(&self) -> &[u8] {
        &self.vendor_info
    }
}

/// A parsed crypto-agile event log: framing checked, nothing replayed or trusted yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventLog {
    spec_id: SpecIdEvent,
    events: Vec<Event>,
    trailing_bytes: usize,
}

impl EventLog {
    /// Parses a log (`binary_bios_measurements`, or a CCEL log area). See the module docs for
    /// where it ends.
    pub fn parse(bytes: &[u8]) -> Result<Self, EventLogError> {
        Self::parse_spans(bytes).map(|(log, _)| log)
    }

    /// Parses and also returns where the header ends and where each event ends (byte
    /// offsets into `bytes`).
    fn parse_spans(bytes: &[u8]) -> Result<(Self, Spans), EventLogError> {
        let mut r = Reader::new(bytes);
        let spec_id = parse_spec_id(&mut r)?;
        let header_end = r.offset();
        let mut event_ends = Vec::new();
        let mut events = Vec::new();
        loop {
            let rest = r.rest();
            let trailing_bytes = if rest.is_empty() {
                Some(0)
            } else {
                padding(rest, r.offset())?
            };
            if let Some(trailing_bytes) = trailing_bytes {
                let log = Self {
                    spec_id,
                    events,
                    trailing_bytes,
                };
                return Ok((
                    log,
                    Spans {
                        header_end,
                        event_ends,
                    },
                ));
            }
            events.push(parse_event(&mut r, &spec_id, events.len())?);
            event_ends.push(r.offset());
        }
    }

    /// The part of a growing log that a verifier which already replayed events
    /// `..first_event` needs: the Spec ID header followed by events `first_event..`, the
    /// end-of-log padding dropped. Parses (and so checks) the whole log first. Returns the cut
    /// log, itself a valid log, and the number of events in the whole log.
    pub fn tail(bytes: &[u8], first_event: usize) -> Result<(Vec<u8>, usize), EventLogError> {
        let (log, spans) = Self::parse_spans(bytes)?;
        let count = log.events.len();
        let start = match first_event.checked_sub(1) {
            None => spans.header_end,
            Some(prev) => *spans
                .event_ends
                .get(prev)
                .ok_or(EventLogError::TailBeyondLog {
                    first_event,
                    events: count,
                })?,
        };
        let end = spans.event_ends.last().copied().unwrap_or(spans.header_end);
        let mut out = bytes.get(..spans.header_end).unwrap_or_default().to_vec();
        out.extend_from_slice(bytes.get(start..end).unwrap_or_default());
        Ok((out, count))
    }

    /// The Spec ID header.
    pub fn spec_id(&self) -> &SpecIdEvent {
        &self.spec_id
    }
    /// The TCG_PCR_EVENT2 entries after the header, in log order; "event `n`" in errors and
    /// mismatch reports is `events()[n]`.
    pub fn events(&self) -> &[Event] {
        &self.events
    }
    /// Bytes of `0x00`/`0xFF` padding after the last event.
    pub fn trailing_bytes(&self) -> usize {
        self.trailing_bytes
    }
}

/// Byte offsets found while parsing: the end of the Spec ID header and the end of each event.
struct Spans {
    header_end: usize,
    event_ends: Vec<usize>,
}

/// `Some(len)` when `rest` is end-of-log padding: at least [`MIN_PADDING_BYTES`], all `0x00`
/// or all `0xFF`. Padding that starts like that but holds other bytes is an error.
fn padding(rest: &[u8], offset: usize) -> Result<Option<usize>, EventLogError> {
    let Some(head) = rest.get(..MIN_PADDING_BYTES) else {
        return Ok(None);
    };
    let Some(&fill) = head.first().filter(|b| **b == 0x00 || **b == 0xff) else {
        return Ok(None);
    };
    if head.iter().any(|b| *b != fill) {
        return Ok(None);
    }
    match rest.iter().position(|b| *b != fill) {
        None => Ok(Some(rest.len())),
        Some(at) => Err(EventLogError::PaddingNotUniform {
            offset: offset.saturating_add(at),
            fill,
        }),
    }
}

/// The first entry: a TCG_PCR_EVENT of type EV_NO_ACTION whose data is a TCG_EfiSpecIdEvent.
fn parse_spec_id(r: &mut Reader<'_>) -> Result<SpecIdEvent, EventLogError> {
    let pcr_index = r.u32("TCG_PCR_EVENT.pcrIndex")?;
    let event_type = r.u32("TCG_PCR_EVENT.eventType")?;
    let digest = r.array::<SHA1_DIGEST_BYTES>("TCG_PCR_EVENT.digest")?;
    let data = r.sized("TCG_PCR_EVENT.eventSize", None)?;
    let mut h = Reader::new(data);
    let signature = h
        .array::<16>("TCG_EfiSpecIdEvent.signature")
        .map_err(|_| EventLogError::MissingSpecIdHeader)?;
    if event_type != EV_NO_ACTION || signature != SPEC_ID_SIGNATURE {
        return Err(EventLogError::MissingSpecIdHeader);
    }
    if digest.iter().any(|b| *b != 0) {
        return Err(EventLogError::MalformedSpecId("digest is not zero"));
    }
    let platform_class = h.u32("TCG_EfiSpecIdEvent.platformClass")?;
    let minor = h.u8("TCG_EfiSpecIdEvent.specVersionMinor")?;
    let major = h.u8("TCG_EfiSpecIdEvent.specVersionMajor")?;
    let errata = h.u8("TCG_EfiSpecIdEvent.specErrata")?;
    let uintn_size = h.u8("TCG_EfiSpecIdEvent.uintnSize")?;
    if major != SPEC_VERSION_MAJOR {
        return Err(EventLogError::MalformedSpecId(
            "spec version major is not 2",
        ));
    }
    if !matches!(uintn_size, 1 | 2) {
        return Err(EventLogError::MalformedSpecId(
            "uintn size is neither 1 nor 2",
        ));
    }
    let count = h.u32("TCG_EfiSpecIdEvent.numberOfAlgorithms")?;
    let count = usize::try_from(count)
        .ok()
        .filter(|c| (1..=MAX_ALGORITHMS).contains(c))
        .ok_or(EventLogError::AlgorithmCount { count })?;
    let mut algorithms = Vec::with_capacity(count);
    for _ in 0..count {
        let id = h.u16("TCG_EfiSpecIdEventAlgorithmSize.algorithmId")?;
        let size = h.u16("TCG_EfiSpecIdEventAlgorithmSize.digestSize")?;
        let alg =
            DigestAlgorithm::from_tpm_alg(id).ok_or(EventLogError::UnknownAlgorithm { id })?;
        if usize::from(size) != alg.digest_bytes() {
            return Err(EventLogError::DigestSize { alg, size });
        }
        if algorithms.contains(&alg) {
            return Err(EventLogError::DuplicateAlgorithm { alg, event: None });
        }
        algorithms.push(alg);
    }
    let vendor_size = h.u8("TCG_EfiSpecIdEvent.vendorInfoSize")?;
    let vendor_info = h
        .take(usize::from(vendor_size), "TCG_EfiSpecIdEvent.vendorInfo")?
        .to_vec();
    if !h.rest().is_empty() {
        return Err(EventLogError::MalformedSpecId(
            "event size is larger than its contents",
        ));
    }
    Ok(SpecIdEvent {
        pcr_index,
        platform_class,
        spec_version: (major, minor, errata),
        uintn_size,
        algorithms,
        vendor_info,
    })
}

/// One TCG_PCR_EVENT2 (PFP §10.2.2) whose TPML_DIGEST_VALUES (TPM 2.0 Part 2 §10.9.5) holds
/// exactly one digest per header algorithm.
fn parse_event(
    r: &mut Reader<'_>,
    spec_id: &SpecIdEvent,
    event: usize,
) -> Result<Event, EventLogError> {
    let pcr_index = r.u32("TCG_PCR_EVENT2.pcrIndex")?;
    let event_type = EventType::from_u32(r.u32("TCG_PCR_EVENT2.eventType")?);
    let count = r.u32("TPML_DIGEST_VALUES.count")?;
    let expected = spec_id.algorithms.len();
    if usize::try_from(count).ok() != Some(expected) {
        return Err(EventLogError::DigestCount {
            event,
            count,
            expected,
        });
    }
    let mut digests: Vec<Digest> = Vec::with_capacity(expected);
    for _ in 0..expected {
        let id = r.u16("TPMT_HA.hashAlg")?;
        let algorithm = DigestAlgorithm::from_tpm_alg(id)
            .filter(|alg| spec_id.algorithms.contains(alg))
            .ok_or(EventLogError::AlgorithmNotInHeader { event, id })?;
        if digests.iter().any(|d| d.algorithm == algorithm) {
            return Err(EventLogError::DuplicateAlgorithm {
                alg: algorithm,
                event: Some(event),
            });
        }
        let value = r.take(algorithm.digest_bytes(), "TPMT_HA.digest")?.to_vec();
        digests.push(Digest { algorithm, value });
    }
    let data = r.sized("TCG_PCR_EVENT2.eventSize", Some(event))?.to_vec();
    Ok(Event {
        pcr_index,
        event_type,
        digests,
        data,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A Spec ID header event listing `algs` (id, size).
    pub(crate) fn header(algs: &[(u16, u16)]) -> Vec<u8> {
        let mut data = SPEC_ID_SIGNATURE.to_vec();
        data.extend_from_slice(&0u32.to_le_bytes());
        data.extend_from_slice(&[0, 2, 0, 2]);
        data.extend_from_slice(&u32::try_from(algs.len()).unwrap().to_le_bytes());
        for (id, size) in algs {
            data.extend_from_slice(&id.to_le_bytes());
            data.extend_from_slice(&size.to_le_bytes());
        }
        data.push(0);
        let mut e = 0u32.to_le_bytes().to_vec();
        e.extend_from_slice(&EV_NO_ACTION.to_le_bytes());
        e.extend_from_slice(&[0; 20]);
        e.extend_from_slice(&u32::try_from(data.len()).unwrap().to_le_bytes());
        e.extend_from_slice(&data);
        e
    }

    /// A TCG_PCR_EVENT2 with the given digests.
    pub(crate) fn event2(pcr: u32, ty: u32, digests: &[(u16, Vec<u8>)], data: &[u8]) -> Vec<u8> {
        let mut e = pcr.to_le_bytes().to_vec();
        e.extend_from_slice(&ty.to_le_bytes());
        e.extend_from_slice(&u32::try_from(digests.len()).unwrap().to_le_bytes());
        for (id, value) in digests {
            e.extend_from_slice(&id.to_le_bytes());
            e.extend_from_slice(value);
        }
        e.extend_from_slice(&u32::try_from(data.len()).unwrap().to_le_bytes());
        e.extend_from_slice(data);
        e
    }

    #[test]
    fn parses_header_events_and_padding() {
        let mut log = header(&[(TPM_ALG_SHA256, 32)]);
        log.extend(event2(0, 8, &[(TPM_ALG_SHA256, vec![7; 32])], b"ver"));
        log.extend(event2(
            7,
            0x8000_00e0,
            &[(TPM_ALG_SHA256, vec![8; 32])],
            b"",
        ));
        let plain = EventLog::parse(&log).unwrap();
        assert_eq!(plain.trailing_bytes(), 0);
        assert_eq!(plain.spec_id().algorithms(), &[DigestAlgorithm::Sha256]);
        assert_eq!(plain.events().len(), 2);
        let first = &plain.events()[0];
        assert_eq!(first.event_type(), EventType::SCrtmVersion);
        assert_eq!(first.event_type().name(), Some("EV_S_CRTM_VERSION"));
        assert_eq!(first.digest(DigestAlgorithm::Sha256), Some(&[7u8; 32][..]));
        assert_eq!(first.digest(DigestAlgorithm::Sha1), None);
        assert_eq!(first.data(), b"ver");
        assert_eq!(
            plain.events()[1].event_type(),
            EventType::EfiVariableAuthority
        );

        for fill in [0x00, 0xff] {
            let mut padded = log.clone();
            padded.extend(std::iter::repeat_n(fill, 100));
            let p = EventLog::parse(&padded).unwrap();
            assert_eq!(p.trailing_bytes(), 100);
            assert_eq!(p.events(), plain.events());
            padded[log.len() + 50] ^= 1;
            assert!(matches!(
                EventLog::parse(&padded),
                Err(EventLogError::PaddingNotUniform { fill: f, offset }) if f == fill && offset == log.len() + 50
            ));
        }
        // Fewer than MIN_PADDING_BYTES of zeros is a truncated event, not padding.
        let mut short = log.clone();
        short.extend([0; 4]);
        assert!(matches!(
            EventLog::parse(&short),
            Err(EventLogError::Truncated { .. })
        ));
    }

    #[test]
    fn unknown_event_types_are_kept() {
        assert_eq!(EventType::from_u32(0x1234), EventType::Unknown(0x1234));
        assert_eq!(EventType::Unknown(0x1234).as_u32(), 0x1234);
        assert_eq!(
            EventType::from_u32(0x8000_000b),
            EventType::EfiHandoffTables2
        );
        assert_eq!(EventType::EfiHandoffTables2.as_u32(), 0x8000_000b);
    }

    #[test]
    fn header_checks() {
        assert!(matches!(
            EventLog::parse(&header(&[])),
            Err(EventLogError::AlgorithmCount { count: 0 })
        ));
        assert!(matches!(
            EventLog::parse(&header(&[(0x0027, 32)])),
            Err(EventLogError::UnknownAlgorithm { id: 0x0027 })
        ));
        assert!(matches!(
            EventLog::parse(&header(&[(TPM_ALG_SHA256, 48)])),
            Err(EventLogError::DigestSize { size: 48, .. })
        ));
        assert!(matches!(
            EventLog::parse(&header(&[(TPM_ALG_SHA256, 32), (TPM_ALG_SHA256, 32)])),
            Err(EventLogError::DuplicateAlgorithm { event: None, .. })
        ));
        let mut not_no_action = header(&[(TPM_ALG_SHA256, 32)]);
        not_no_action[4] = 4;
        assert!(matches!(
            EventLog::parse(&not_no_action),
            Err(EventLogError::MissingSpecIdHeader)
        ));
        let mut legacy = header(&[(TPM_ALG_SHA256, 32)]);
        legacy[32 + 14] = b'0'; // "Spec ID Event00"
        assert!(matches!(
            EventLog::parse(&legacy),
            Err(EventLogError::MissingSpecIdHeader)
        ));
        let mut digest = header(&[(TPM_ALG_SHA256, 32)]);
        digest[8] = 1;
        assert!(matches!(
            EventLog::parse(&digest),
            Err(EventLogError::MalformedSpecId(_))
        ));
    }

    #[test]
    fn event_digest_checks() {
        let h = header(&[(TPM_ALG_SHA1, 20), (TPM_ALG_SHA256, 32)]);
        let sha1 = (TPM_ALG_SHA1, vec![0; 20]);
        let sha256 = (TPM_ALG_SHA256, vec![0; 32]);
        let with = |digests: &[(u16, Vec<u8>)]| {
            let mut log = h.clone();
            log.extend(event2(1, 4, digests, &[0; 4]));
            EventLog::parse(&log)
        };
        with(&[sha256.clone(), sha1.clone()]).unwrap();
        assert!(matches!(
            with(std::slice::from_ref(&sha1)),
            Err(EventLogError::DigestCount {
                event: 0,
                count: 1,
                expected: 2
            })
        ));
        assert!(matches!(
            with(&[sha1.clone(), sha1.clone()]),
            Err(EventLogError::DuplicateAlgorithm { event: Some(0), .. })
        ));
        assert!(matches!(
            with(&[sha1, (TPM_ALG_SHA384, vec![0; 48])]),
            Err(EventLogError::AlgorithmNotInHeader {
                event: 0,
                id: TPM_ALG_SHA384
            })
        ));
        let mut huge = h.clone();
        huge.extend(event2(1, 4, &[], &[]));
        huge.truncate(h.len() + 8);
        huge.extend(2u32.to_le_bytes());
        huge.extend(TPM_ALG_SHA1.to_le_bytes());
        huge.extend([0; 20]);
        huge.extend(TPM_ALG_SHA256.to_le_bytes());
        huge.extend([0; 32]);
        huge.extend(u32::MAX.to_le_bytes());
        assert!(matches!(
            EventLog::parse(&huge),
            Err(EventLogError::SizeExceedsLog {
                event: Some(0),
                size: u32::MAX,
                ..
            })
        ));
    }
}
