//! Verifier role: replaying a parsed log into register values and comparing them with values
//! a verified quote or report holds.
//!
//! Replay follows PFP §10.1 and TPM 2.0 Part 1 §17.6: every register starts at zero, each
//! event that is not `EV_NO_ACTION` extends its register (`R = H(R ‖ digest)`), and a
//! TCG_EfiStartupLocalityEvent in PCR 0 (PFP §10.4.5.3) sets PCR 0's starting value to zero
//! with its last octet equal to the locality. The log is only as good as the comparison: a
//! replayed value means nothing until it equals a register value from verified evidence.

use super::event::{DigestAlgorithm, Event, EventLog};
use super::EventLogError;
use std::collections::BTreeMap;

/// A register a log extends, as a mismatch report names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Register {
    /// A TPM PCR (the event's `pcrIndex` in a TPM log).
    Pcr(u32),
    /// TDX RTMR `n` (CCEL MR index `n + 1`).
    Rtmr(u8),
}

impl std::fmt::Display for Register {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Pcr(i) => write!(f, "pcr {i}"),
            Self::Rtmr(i) => write!(f, "rtmr {i}"),
        }
    }
}

/// Why a replayed register differs from the value the hardware reports.
///
/// "Which event broke it": a hash chain cannot say which event was altered, only where the
/// log and the register part ways when one of them is a prefix of the other. So
/// [`ReplayMismatch::expected_after`] is set when the expected value equals the register's
/// value at an earlier point of the replay: the register saw only the events up to that point,
/// and every later event of the register is one it never saw (the first of them is where the
/// log "broke"). When it is `None`, no prefix of the register's events reaches the expected
/// value: some event of the register (any of `events`, up to [`ReplayMismatch::last_event`])
/// was altered, dropped, reordered or is missing from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayMismatch {
    /// The register.
    pub register: Register,
    /// The value the hardware reports.
    pub expected: Vec<u8>,
    /// The value the log replays to.
    pub replayed: Vec<u8>,
    /// How many events extended the register.
    pub events: usize,
    /// Index in [`EventLog::events`] of the last event that extended it.
    pub last_event: Option<usize>,
    /// When the expected value is the register's value after its first `k < events` events:
    /// `Some(Prefix { extends: k, first_unseen })` (see the type docs).
    pub expected_after: Option<Prefix>,
}

/// Where a register's replay passed through the expected value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prefix {
    /// How many of the register's events the expected value covers.
    pub extends: usize,
    /// Index in [`EventLog::events`] of the first event the register did not see.
    pub first_unseen: usize,
}

impl std::fmt::Display for ReplayMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} replays to `{}` but the evidence reports `{}` ({} events",
            self.register,
            hex::encode(&self.replayed),
            hex::encode(&self.expected),
            self.events
        )?;
        if let Some(last) = self.last_event {
            write!(f, ", last is event {last}")?;
        }
        match self.expected_after {
            Some(p) => write!(
                f,
                "); the evidence matches the first {} of them: event {} and later were not extended",
                p.extends, p.first_unseen
            ),
            None => f.write_str("); no prefix of its events reaches the reported value"),
        }
    }
}

/// Why a log does not replay to the expected register values.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// "event log cannot be replayed": the bank is missing, cannot be computed, or an event
    /// names a register this kind of log cannot have.
    #[error("event log cannot be replayed")]
    Log(#[source] EventLogError),
    /// "{0}".
    #[error("{0}")]
    Mismatch(Box<ReplayMismatch>),
}

/// One register's replay: its value after each of its extends.
pub(crate) struct Chain {
    initial: Vec<u8>,
    /// (index in the log, value after that extend).
    steps: Vec<(usize, Vec<u8>)>,
}

impl Chain {
    /// The register's value at the end of the log.
    pub(crate) fn value(&self) -> &[u8] {
        self.steps.last().map_or(&self.initial, |(_, v)| v)
    }

    fn mismatch(&self, register: Register, expected: &[u8]) -> ReplayMismatch {
        let expected_after = std::iter::once(self.initial.as_slice())
            .chain(self.steps.iter().map(|(_, v)| v.as_slice()))
            .position(|v| v == expected)
            .and_then(|extends| {
                self.steps.get(extends).map(|(first_unseen, _)| Prefix {
                    extends,
                    first_unseen: *first_unseen,
                })
            });
        ReplayMismatch {
            register,
            expected: expected.to_vec(),
            replayed: self.value().to_vec(),
            events: self.steps.len(),
            last_event: self.steps.last().map(|(i, _)| *i),
            expected_after,
        }
    }
}

/// `H(register ‖ digest)` with `ring`.
fn extend(alg: DigestAlgorithm, register: &[u8], digest: &[u8]) -> Result<Vec<u8>, EventLogError> {
    let algorithm = match alg {
        DigestAlgorithm::Sha1 => &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
        DigestAlgorithm::Sha256 => &ring::digest::SHA256,
        DigestAlgorithm::Sha384 => &ring::digest::SHA384,
        DigestAlgorithm::Sha512 => &ring::digest::SHA512,
        DigestAlgorithm::Sm3_256 => return Err(EventLogError::ReplayUnsupported { alg }),
    };
    let mut ctx = ring::digest::Context::new(algorithm);
    ctx.update(register);
    ctx.update(digest);
    Ok(ctx.finish().as_ref().to_vec())
}

/// Replays every register with its history.
pub(crate) fn chains(
    log: &EventLog,
    alg: DigestAlgorithm,
) -> Result<BTreeMap<u32, Chain>, EventLogError> {
    chains_from(log, alg, &BTreeMap::new())
}

/// Replays every register with its history, each starting from its value in `base` (zero
/// when `base` does not name it): the continuation of a replay that already covered the
/// events before `log`'s first.
fn chains_from(
    log: &EventLog,
    alg: DigestAlgorithm,
    base: &BTreeMap<u32, Vec<u8>>,
) -> Result<BTreeMap<u32, Chain>, EventLogError> {
    if !log.spec_id().algorithms().contains(&alg) {
        return Err(EventLogError::AlgorithmNotInLog { alg });
    }
    let zero = vec![0u8; alg.digest_bytes()];
    // Probe once so that an uncomputable bank fails even on a log without events.
    extend(alg, &zero, &zero)?;
    let mut chains: BTreeMap<u32, Chain> = base
        .iter()
        .filter(|(_, v)| v.len() == zero.len())
        .map(|(i, v)| {
            (
                *i,
                Chain {
                    initial: v.clone(),
                    steps: Vec::new(),
                },
            )
        })
        .collect();
    for (index, event) in log.events().iter().enumerate() {
        let chain = chains.entry(event.pcr_index()).or_insert_with(|| Chain {
            initial: zero.clone(),
            steps: Vec::new(),
        });
        if event.event_type() == super::EventType::NoAction {
            apply_startup_locality(chain, event, index)?;
            continue;
        }
        let digest = event
            .digest(alg)
            .ok_or(EventLogError::AlgorithmNotInLog { alg })?;
        let next = extend(alg, chain.value(), digest)?;
        chain.steps.push((index, next));
    }
    // Registers only EV_NO_ACTION events named were never extended; keep them only when a
    // StartupLocality event gave them a non-zero start.
    chains.retain(|_, c| !c.steps.is_empty() || c.initial != zero);
    Ok(chains)
}

/// A StartupLocality event sets PCR 0's starting value; it must come before PCR 0 is extended
/// and appear once.
fn apply_startup_locality(
    chain: &mut Chain,
    event: &Event,
    index: usize,
) -> Result<(), EventLogError> {
    let Some(locality) = event.startup_locality() else {
        return Ok(());
    };
    if event.pcr_index() != 0 {
        return Ok(());
    }
    if !chain.steps.is_empty() || chain.initial.iter().any(|b| *b != 0) {
        return Err(EventLogError::MisplacedStartupLocality { event: index });
    }
    if let Some(last) = chain.initial.last_mut() {
        *last = locality;
    }
    Ok(())
}

/// The value of every register the log extends, in bank `alg`, keyed by `pcrIndex`.
pub fn replay(
    log: &EventLog,
    alg: DigestAlgorithm,
) -> Result<BTreeMap<u32, Vec<u8>>, EventLogError> {
    Ok(chains(log, alg)?
        .into_iter()
        .map(|(i, c)| (i, c.value().to_vec()))
        .collect())
}

/// Replays `log` in bank `alg` and compares each register named in `expected` (keyed by
/// `pcrIndex`) with its replayed value; a register the log never extends replays to zero.
/// Registers the log extends but `expected` does not name are not compared. Reports the
/// lowest mismatching register.
pub fn check_against(
    log: &EventLog,
    alg: DigestAlgorithm,
    expected: &BTreeMap<u32, Vec<u8>>,
) -> Result<(), ReplayError> {
    let chains = chains(log, alg).map_err(ReplayError::Log)?;
    compare(
        &chains,
        alg,
        expected
            .iter()
            .map(|(i, v)| (*i, Register::Pcr(*i), v.as_slice())),
    )
}

/// Continues a replay: `log` holds the events after those that produced `base` (register
/// values in bank `alg`, keyed by `pcrIndex`; empty = the start of the log), as
/// [`EventLog::tail`] cuts it. Finds the longest prefix of `log`'s events after which every
/// register named in `expected` equals its replayed value (a register neither `base` nor the
/// log touches replays to zero), and returns how many events that prefix holds and the
/// register values after it, `base` included: the `base` of the next delta.
///
/// A prefix, not the whole part, because a log is written before its register is extended:
/// a quote taken in between covers every event but the last ones, which the next delta
/// carries again. Events after the prefix are not trusted. When no prefix reaches `expected`,
/// the error is the mismatch of the whole part.
///
/// This is how a verifier appraises a growing log without re-reading it: the first quote
/// comes with the whole log, each later quote with only the events since the last one.
pub fn check_delta(
    log: &EventLog,
    alg: DigestAlgorithm,
    base: &BTreeMap<u32, Vec<u8>>,
    expected: &BTreeMap<u32, Vec<u8>>,
) -> Result<(usize, BTreeMap<u32, Vec<u8>>), ReplayError> {
    let chains = chains_from(log, alg, base).map_err(ReplayError::Log)?;
    let zero = vec![0u8; alg.digest_bytes()];
    // Each register's value after the first `k` events, walking k from 0 to the end.
    let mut current: BTreeMap<u32, &[u8]> = chains
        .iter()
        .map(|(i, c)| (*i, c.initial.as_slice()))
        .collect();
    let matches = |current: &BTreeMap<u32, &[u8]>| {
        expected
            .iter()
            .all(|(i, v)| current.get(i).copied().unwrap_or(zero.as_slice()) == v.as_slice())
    };
    let mut covered = matches(&current).then_some(0usize);
    // (event index, register, value after it), in log order.
    let mut steps: Vec<(usize, u32, &[u8])> = chains
        .iter()
        .flat_map(|(i, c)| c.steps.iter().map(move |(e, v)| (*e, *i, v.as_slice())))
        .collect();
    steps.sort_unstable_by_key(|(e, _, _)| *e);
    let mut next = steps.iter().peekable();
    for k in 1..=log.events().len() {
        // Apply event k-1 (EV_NO_ACTION events have no step).
        while let Some((_, reg, value)) = next.next_if(|(e, _, _)| *e < k) {
            current.insert(*reg, value);
        }
        if matches(&current) {
            covered = Some(k);
        }
    }
    let Some(k) = covered else {
        compare(
            &chains,
            alg,
            expected
                .iter()
                .map(|(i, v)| (*i, Register::Pcr(*i), v.as_slice())),
        )?;
        // compare() found no mismatch only if the whole part matched, which `covered` saw.
        return Err(ReplayError::Log(EventLogError::TailBeyondLog {
            first_event: 0,
            events: log.events().len(),
        }));
    };
    let state = chains
        .iter()
        .map(|(i, c)| {
            let value = c
                .steps
                .iter()
                .take_while(|(e, _)| *e < k)
                .last()
                .map_or(c.initial.as_slice(), |(_, v)| v.as_slice());
            (*i, value.to_vec())
        })
        .filter(|(_, v)| *v != zero)
        .collect();
    Ok((k, state))
}

/// Compares (log index, register, expected value) triples with the replay.
pub(crate) fn compare<'a>(
    chains: &BTreeMap<u32, Chain>,
    alg: DigestAlgorithm,
    expected: impl Iterator<Item = (u32, Register, &'a [u8])>,
) -> Result<(), ReplayError> {
    let untouched = Chain {
        initial: vec![0u8; alg.digest_bytes()],
        steps: Vec::new(),
    };
    for (index, register, value) in expected {
        let chain = chains.get(&index).unwrap_or(&untouched);
        if chain.value() != value {
            return Err(ReplayError::Mismatch(Box::new(
                chain.mismatch(register, value),
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::defs::*;
    use super::super::event::tests::{event2, header};
    use super::*;

    fn sha256(parts: &[&[u8]]) -> Vec<u8> {
        crate::sha256(&parts.concat()).to_vec()
    }

    fn locality_event(pcr: u32, locality: u8) -> Vec<u8> {
        let mut data = STARTUP_LOCALITY_SIGNATURE.to_vec();
        data.push(locality);
        event2(pcr, EV_NO_ACTION, &[(TPM_ALG_SHA256, vec![0; 32])], &data)
    }

    #[test]
    fn replays_extends_and_skips_no_action() {
        let mut log = header(&[(TPM_ALG_SHA256, 32)]);
        log.extend(event2(3, 4, &[(TPM_ALG_SHA256, vec![1; 32])], b""));
        log.extend(event2(
            3,
            EV_NO_ACTION,
            &[(TPM_ALG_SHA256, vec![9; 32])],
            b"",
        ));
        log.extend(event2(3, 4, &[(TPM_ALG_SHA256, vec![2; 32])], b""));
        log.extend(event2(
            5,
            EV_NO_ACTION,
            &[(TPM_ALG_SHA256, vec![9; 32])],
            b"",
        ));
        let log = EventLog::parse(&log).unwrap();
        let pcrs = replay(&log, DigestAlgorithm::Sha256).unwrap();
        let once = sha256(&[&[0; 32], &[1; 32]]);
        assert_eq!(pcrs.len(), 1, "pcr 5 saw only EV_NO_ACTION");
        assert_eq!(pcrs[&3], sha256(&[&once, &[2; 32]]));
        assert!(matches!(
            replay(&log, DigestAlgorithm::Sha384),
            Err(EventLogError::AlgorithmNotInLog { .. })
        ));
    }

    #[test]
    fn startup_locality_sets_pcr0_start() {
        let mut bytes = header(&[(TPM_ALG_SHA256, 32)]);
        bytes.extend(locality_event(0, 3));
        bytes.extend(event2(0, 8, &[(TPM_ALG_SHA256, vec![1; 32])], b""));
        let log = EventLog::parse(&bytes).unwrap();
        assert_eq!(log.events()[0].startup_locality(), Some(3));
        let mut start = [0u8; 32];
        start[31] = 3;
        assert_eq!(
            replay(&log, DigestAlgorithm::Sha256).unwrap()[&0],
            sha256(&[&start, &[1; 32]])
        );
        // After PCR 0 was extended, a locality event is refused.
        bytes.extend(locality_event(0, 3));
        let late = EventLog::parse(&bytes).unwrap();
        assert!(matches!(
            replay(&late, DigestAlgorithm::Sha256),
            Err(EventLogError::MisplacedStartupLocality { event: 2 })
        ));
        // In another PCR it is just an EV_NO_ACTION event.
        let mut other = header(&[(TPM_ALG_SHA256, 32)]);
        other.extend(locality_event(1, 3));
        let other = EventLog::parse(&other).unwrap();
        assert!(replay(&other, DigestAlgorithm::Sha256).unwrap().is_empty());
    }

    #[test]
    fn mismatch_names_register_and_prefix() {
        let mut bytes = header(&[(TPM_ALG_SHA256, 32)]);
        for (pcr, fill) in [(1u32, 1u8), (2, 2), (1, 3), (1, 4)] {
            bytes.extend(event2(pcr, 4, &[(TPM_ALG_SHA256, vec![fill; 32])], b""));
        }
        let log = EventLog::parse(&bytes).unwrap();
        let pcrs = replay(&log, DigestAlgorithm::Sha256).unwrap();
        check_against(&log, DigestAlgorithm::Sha256, &pcrs).unwrap();

        // The register saw only the first two of PCR 1's three events: event 3 is unseen.
        let after_two = sha256(&[&sha256(&[&[0; 32], &[1; 32]]), &[3; 32]]);
        let mut expected = pcrs.clone();
        expected.insert(1, after_two.clone());
        let Err(ReplayError::Mismatch(m)) = check_against(&log, DigestAlgorithm::Sha256, &expected)
        else {
            panic!("expected a mismatch");
        };
        assert_eq!(m.register, Register::Pcr(1));
        assert_eq!(m.expected, after_two);
        assert_eq!(m.replayed, pcrs[&1]);
        assert_eq!(m.events, 3);
        assert_eq!(m.last_event, Some(3));
        assert_eq!(
            m.expected_after,
            Some(Prefix {
                extends: 2,
                first_unseen: 3
            })
        );
        assert!(m.to_string().contains("event 3 and later"), "{m}");

        // A value no prefix reaches.
        expected.insert(1, vec![0xee; 32]);
        let Err(ReplayError::Mismatch(m)) = check_against(&log, DigestAlgorithm::Sha256, &expected)
        else {
            panic!("expected a mismatch");
        };
        assert_eq!(m.expected_after, None);

        // A register the log never extends replays to zero.
        let mut expected = BTreeMap::new();
        expected.insert(9, vec![0; 32]);
        check_against(&log, DigestAlgorithm::Sha256, &expected).unwrap();
        expected.insert(9, vec![1; 32]);
        let Err(ReplayError::Mismatch(m)) = check_against(&log, DigestAlgorithm::Sha256, &expected)
        else {
            panic!("expected a mismatch");
        };
        assert_eq!(
            (m.register, m.events, m.last_event),
            (Register::Pcr(9), 0, None)
        );
    }
}
