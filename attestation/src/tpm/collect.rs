//! The vTPM attester: quotes SHA-256 PCRs 0-15 through `tss-esapi` (libtss2), with the
//! binding value as qualifying data. Production code for a guest with a TPM (`/dev/tpmrm0`:
//! TCTI `device:/dev/tpmrm0`) and, in tests, swtpm over TCP (`swtpm:host=127.0.0.1,port=P`).
//!
//! The AK is an ECDSA P-256 restricted signing key created under the TCG default endorsement
//! key (EK Credential Profile template L-2, ECC NIST P-256) with the EK policy, as
//! `tss_esapi::abstraction::ak` builds it. It lives as long as the attester; its public area is
//! shipped in every evidence item.

use super::{verify, EventLogPart, PcrValue, TpmError, TpmEvidence};
use crate::binding::{BindingValue, Level};
use crate::eventlog::EventLog;
use crate::evidence::{Attester, CollectError, EvidenceItem, EvidenceKind};
use std::str::FromStr;
use tss_esapi::abstraction::{ak, ek, pcr, AsymmetricAlgorithmSelection};
use tss_esapi::handles::{KeyHandle, PcrHandle};
use tss_esapi::interface_types::algorithm::{HashingAlgorithm, SignatureSchemeAlgorithm};
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::structures::{
    Data, Digest, DigestValues, PcrSelectionList, PcrSelectionListBuilder, PcrSlot, SignatureScheme,
};
use tss_esapi::traits::Marshall;
use tss_esapi::{Context, TctiNameConf};

/// [`super::QUOTED_PCRS`] as tss-esapi slots.
const QUOTED_SLOTS: [PcrSlot; 16] = [
    PcrSlot::Slot0,
    PcrSlot::Slot1,
    PcrSlot::Slot2,
    PcrSlot::Slot3,
    PcrSlot::Slot4,
    PcrSlot::Slot5,
    PcrSlot::Slot6,
    PcrSlot::Slot7,
    PcrSlot::Slot8,
    PcrSlot::Slot9,
    PcrSlot::Slot10,
    PcrSlot::Slot11,
    PcrSlot::Slot12,
    PcrSlot::Slot13,
    PcrSlot::Slot14,
    PcrSlot::Slot15,
];

/// How many times to quote again when a PCR changed between the quote and the PCR read.
const QUOTE_ATTEMPTS: usize = 3;

/// Maps a TSS error to a [`CollectError::Tpm`] naming the operation.
fn tss(op: &'static str) -> impl FnOnce(tss_esapi::Error) -> CollectError {
    move |e| CollectError::Tpm {
        op,
        detail: e.to_string(),
    }
}

/// A TPM connection and a loaded attestation key.
pub struct TpmAttester {
    context: Context,
    ak: KeyHandle,
    ak_public: Vec<u8>,
    /// The measured-boot event log to ship with each quote, if the platform keeps one.
    event_log: Option<std::path::PathBuf>,
    /// First event of the next quote's log part (what the verifier has replayed).
    event_log_from: u32,
}

impl Drop for TpmAttester {
    /// Flushes the AK: a TPM without a resource manager keeps transient objects until then.
    fn drop(&mut self) {
        let _ = self.context.flush_context(self.ak.into());
    }
}

impl std::fmt::Debug for TpmAttester {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TpmAttester")
            .field("ak_public", &hex::encode(&self.ak_public))
            .finish_non_exhaustive()
    }
}

/// Flushes the transient objects loaded in the TPM before this connection: an attester whose
/// process was killed (SIGKILL, a crash) never ran its [`Drop`], and a TPM without a resource
/// manager (swtpm over TCP) keeps its AK loaded until the few object slots are full and every
/// later `create ak` fails with "out of memory for object contexts". Behind a resource manager
/// (`/dev/tpmrm0`) the list is this connection's own, empty. Returns how many it flushed.
fn flush_stale_transients(context: &mut Context) -> Result<usize, CollectError> {
    use tss_esapi::constants::tss::TPM2_TRANSIENT_FIRST;
    use tss_esapi::constants::CapabilityType;
    use tss_esapi::structures::CapabilityData;
    let mut flushed = 0;
    // A TPM holds a handful of transient objects; a few rounds drain any list.
    for _ in 0..8 {
        let (data, _more) = context
            .get_capability(CapabilityType::Handles, TPM2_TRANSIENT_FIRST, 64)
            .map_err(tss("list transient handles"))?;
        let CapabilityData::Handles(list) = data else {
            return Ok(flushed);
        };
        if list.is_empty() {
            return Ok(flushed);
        }
        for handle in list.into_inner() {
            let object = context
                .tr_from_tpm_public(handle)
                .map_err(tss("open stale transient handle"))?;
            context
                .flush_context(object)
                .map_err(tss("flush stale transient handle"))?;
            flushed += 1;
        }
    }
    Ok(flushed)
}

impl TpmAttester {
    /// Connects through a TCTI (`device:/dev/tpmrm0`, `swtpm:host=127.0.0.1,port=2321`, …),
    /// creates the EK and the AK, loads the AK and flushes the EK.
    pub fn connect(tcti: &str) -> Result<Self, CollectError> {
        let conf = TctiNameConf::from_str(tcti).map_err(tss("parse tcti"))?;
        let mut context = Context::new(conf).map_err(tss("open tcti"))?;
        flush_stale_transients(&mut context)?;
        let p256 = AsymmetricAlgorithmSelection::Ecc(EccCurve::NistP256);
        let ek = ek::create_ek_object_2(&mut context, p256, None).map_err(tss("create ek"))?;
        let created = ak::create_ak_2(
            &mut context,
            ek,
            HashingAlgorithm::Sha256,
            p256,
            SignatureSchemeAlgorithm::EcDsa,
            None,
            None,
        )
        .map_err(tss("create ak"))?;
        let ak_public = created.out_public.marshall().map_err(tss("marshal ak"))?;
        let ak = ak::load_ak(
            &mut context,
            ek,
            None,
            created.out_private,
            created.out_public,
        )
        .map_err(tss("load ak"))?;
        context.flush_context(ek.into()).map_err(tss("flush ek"))?;
        Ok(Self {
            context,
            ak,
            ak_public,
            event_log: None,
            event_log_from: 0,
        })
    }

    /// Ships the TCG2 event log at `path` (in a guest
    /// [`EVENT_LOG_PATH`](crate::tpm::EVENT_LOG_PATH)) with every quote: the whole log, or
    /// the events since the index given to [`Attester::event_log_from`].
    pub fn with_event_log(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.event_log = Some(path.into());
        self
    }

    /// The log file's bytes, if there is a log.
    fn read_event_log(&self) -> Result<Option<Vec<u8>>, CollectError> {
        let Some(path) = &self.event_log else {
            return Ok(None);
        };
        std::fs::read(path).map(Some).map_err(|e| {
            CollectError::Malformed(format!("reading event log `{}`: {e}", path.display()))
        })
    }

    /// The part of `bytes` to ship: events from `event_log_from` on, or the whole log when
    /// the log holds fewer events than that (a new boot: the verifier replays from zero).
    fn log_part(&self, bytes: &[u8]) -> Result<EventLogPart, CollectError> {
        let malformed =
            |e: crate::eventlog::EventLogError| CollectError::Malformed(format!("event log: {e}"));
        let from = usize::try_from(self.event_log_from).unwrap_or(usize::MAX);
        let (log, total, first) = match EventLog::tail(bytes, from) {
            Ok((log, total)) => (log, total, self.event_log_from),
            Err(crate::eventlog::EventLogError::TailBeyondLog { .. }) => {
                let (log, total) = EventLog::tail(bytes, 0).map_err(malformed)?;
                (log, total, 0)
            }
            Err(e) => return Err(malformed(e)),
        };
        Ok(EventLogPart {
            first_event: first,
            total_events: u32::try_from(total)
                .map_err(|_| CollectError::Malformed("event log has too many events".into()))?,
            log,
        })
    }

    /// The AK's marshalled TPMT_PUBLIC.
    pub fn ak_public(&self) -> &[u8] {
        &self.ak_public
    }

    /// Extends PCR `index`'s SHA-256 bank with `digest` (TPM2_PCR_Extend, TCG Part 3 §22.2):
    /// the enclave measures what it loads after boot this way.
    pub fn extend_pcr(&mut self, index: u8, digest: [u8; 32]) -> Result<(), CollectError> {
        let handle = PcrHandle::try_from(u32::from(index)).map_err(tss("pcr handle"))?;
        let digest = Digest::try_from(digest.to_vec()).map_err(tss("pcr digest"))?;
        let mut values = DigestValues::new();
        values.set(HashingAlgorithm::Sha256, digest);
        self.context
            .execute_with_nullauth_session(|ctx| ctx.pcr_extend(handle, values))
            .map_err(tss("extend pcr"))
    }

    fn selection() -> Result<PcrSelectionList, CollectError> {
        PcrSelectionListBuilder::new()
            .with_selection(HashingAlgorithm::Sha256, &QUOTED_SLOTS)
            .build()
            .map_err(tss("build pcr selection"))
    }

    /// One quote and the PCR values read right after it.
    fn quote_once(&mut self, qualifying_data: &[u8]) -> Result<TpmEvidence, CollectError> {
        let data = Data::try_from(qualifying_data.to_vec()).map_err(tss("qualifying data"))?;
        let selection = Self::selection()?;
        let ak = self.ak;
        let (attest, signature) = self
            .context
            .execute_with_nullauth_session(|ctx| {
                ctx.quote(ak, data, SignatureScheme::Null, selection)
            })
            .map_err(tss("quote"))?;
        let pcr_data =
            pcr::read_all(&mut self.context, Self::selection()?).map_err(tss("read pcrs"))?;
        let bank = pcr_data
            .pcr_bank(HashingAlgorithm::Sha256)
            .ok_or_else(|| CollectError::Malformed("tpm returned no sha256 pcr bank".into()))?;
        let mut pcrs = Vec::with_capacity(QUOTED_SLOTS.len());
        for (slot, digest) in bank {
            let index = u8::try_from(u32::from(*slot).trailing_zeros())
                .map_err(|_| CollectError::Malformed("pcr index out of range".into()))?;
            pcrs.push(PcrValue {
                index,
                digest: digest.value().to_vec(),
            });
        }
        Ok(TpmEvidence {
            ak_public: self.ak_public.clone(),
            attest: attest.marshall().map_err(tss("marshal attest"))?,
            signature: signature.marshall().map_err(tss("marshal signature"))?,
            pcrs,
            event_log: None,
        })
    }

    /// Quotes and reads the PCRs, then verifies the result as a verifier would: a PCR that
    /// changed between quote and read means quoting again, any other failure is an error.
    pub fn quote(&mut self, qualifying_data: &[u8]) -> Result<TpmEvidence, CollectError> {
        let mut last = None;
        for _ in 0..QUOTE_ATTEMPTS {
            // The log is read before and after the quote: a log that grew in between may hold
            // an event the quote does not cover (or the reverse), so quote again.
            let log_before = self.read_event_log()?;
            let mut evidence = self.quote_once(qualifying_data)?;
            if self.read_event_log()? != log_before {
                last = Some(TpmError::PcrDigestMismatch);
                continue;
            }
            if let Some(bytes) = &log_before {
                evidence.event_log = Some(self.log_part(bytes)?);
            }
            match verify(&evidence, qualifying_data) {
                Ok(_) => return Ok(evidence),
                Err(TpmError::PcrDigestMismatch) => last = Some(TpmError::PcrDigestMismatch),
                Err(e) => return Err(CollectError::Malformed(e.to_string())),
            }
        }
        Err(CollectError::Malformed(format!(
            "pcrs kept changing while quoting: {}",
            last.map(|e| e.to_string()).unwrap_or_default()
        )))
    }
}

impl Attester for TpmAttester {
    fn kind(&self) -> EvidenceKind {
        EvidenceKind::Tpm
    }

    fn level(&self) -> Option<Level> {
        None
    }

    fn collect(&mut self, binding: &BindingValue) -> Result<EvidenceItem, CollectError> {
        self.quote(binding.tpm_qualifying_data())?.to_item()
    }

    fn event_log_from(&mut self, first_event: u32) {
        self.event_log_from = first_event;
    }
}
