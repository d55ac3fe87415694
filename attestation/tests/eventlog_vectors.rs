//! The TCG2 crypto-agile event-log parser and replay against real logs: TDX CCELs (trustee,
//! with the source's parsed output; go-tdx-guest, with the TD quote it pairs with) and a GCE
//! Shielded VM vTPM log (go-tpm-tools, with the quotes of the same attestation). Provenance
//! and licenses: `tests/vectors/eventlog/PROVENANCE.md`. A missing vector file fails the test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test code: a failed expectation is a test failure"
)]

use attestation::eventlog::{
    check_against, check_delta, check_rtmrs, replay, replay_rtmrs, CcelTable, DigestAlgorithm,
    EventLog, EventType, Prefix, Register, ReplayError, Rtmrs,
};
use attestation::tpm::{verify_quote_with_key, AkPublic, PcrValue};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use sha2::Digest as _;
use std::collections::BTreeMap;
use std::path::PathBuf;

fn read(rel: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors")
        .join(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("vector `{}` is missing: {e}", path.display()))
}

fn hex48(s: &str) -> [u8; 48] {
    hex::decode(s).unwrap().try_into().unwrap()
}

/// The trustee CCELs with the RTMR0..3 values the source's own tests (`deps/eventlog/src/
/// lib.rs`, `test_rtmr_integrity`) expect them to replay to, and the padding they end with.
fn trustee_ccels() -> Vec<(&'static str, Rtmrs, usize)> {
    let zero = [0u8; 48];
    vec![
        (
            "CCEL_data",
            [
                hex48("2dc712306a963eadb894ad47dbaa17df44814151555aee11cbb843becca88950ffd079664902e6f22c66f7c8213543f4"),
                hex48("0fa3be56af61208bbd179dc7b124988eb929319154663c539d6f46445ecac2fec287075047ff7bd1922829fec28cd3cf"),
                zero,
                zero,
            ],
            1_038_754,
        ),
        (
            "CCEL_data_ovmf",
            [
                hex48("8566f998798db09443b244c62de9a3041fb02e2e6936c4396d784bba2e90177329ec5aba3bb484404f2ab9cc90abe193"),
                hex48("775b9f6bfe99f8a31396f0d0218e67ffa796d3b96ccf961cbb0deba48c79c00f082cda1a5567c1c16305f1fc210c13c6"),
                hex48("94eaf7a7bf398ed8d888c91057ae0261802e4f3df084213a76ca7f0b5055ac9d2241de43cd58d9e8b49c503bbf25f34a"),
                zero,
            ],
            63_416,
        ),
        (
            "CCEL_data_grub",
            [
                hex48("cec0a104f691f60da2387fea3c2de00c4ac035e2bb479ff02edcce69039d9e9907f0b3e55031da3dc7038f423adebd79"),
                hex48("6c289e0c62182d41ebe97bdbc9872d10998a08eaa86adcdc684001a363207ee72942c7522cdf00a4bbc3d784bed7b670"),
                hex48("08919d017ba0e52cd6d966351c7de16fe76c1d3d3d3da4554239e4c7d16cb8b82a94e7eaea3a0e6e18eb690b999fd31e"),
                zero,
            ],
            50_406,
        ),
    ]
}

fn algorithm(name: &str) -> DigestAlgorithm {
    match name {
        "SHA-1" => DigestAlgorithm::Sha1,
        "SHA-256" => DigestAlgorithm::Sha256,
        "SHA-384" => DigestAlgorithm::Sha384,
        "SHA-512" => DigestAlgorithm::Sha512,
        other => panic!("unexpected algorithm `{other}` in the source's output"),
    }
}

#[test]
fn trustee_ccels_parse_into_the_events_the_source_lists() {
    for (name, _, trailing) in trustee_ccels() {
        let log = EventLog::parse(&read(&format!("eventlog/trustee-ccel/{name}"))).unwrap();
        let out: serde_json::Value =
            serde_json::from_slice(&read(&format!("eventlog/trustee-ccel/{name}_out.json")))
                .unwrap();
        let listed = out["uefi_event_logs"].as_array().unwrap();
        assert_eq!(log.events().len(), listed.len(), "{name}: event count");
        assert_eq!(log.trailing_bytes(), trailing, "{name}: padding");
        assert_eq!(log.spec_id().algorithms(), &[DigestAlgorithm::Sha384]);
        for (n, (event, want)) in log.events().iter().zip(listed).enumerate() {
            let at = format!("{name} event {n}");
            assert_eq!(
                u64::from(event.pcr_index()),
                want["index"].as_u64().unwrap(),
                "{at}"
            );
            assert_eq!(
                event.event_type().name(),
                Some(want["type_name"].as_str().unwrap()),
                "{at}"
            );
            let digests = want["digests"].as_array().unwrap();
            assert_eq!(event.digests().len(), digests.len(), "{at}");
            for (got, want) in event.digests().iter().zip(digests) {
                assert_eq!(got.algorithm(), algorithm(want["alg"].as_str().unwrap()));
                assert_eq!(
                    hex::encode(got.value()),
                    want["digest"].as_str().unwrap(),
                    "{at}"
                );
            }
            assert_eq!(
                event.data(),
                B64.decode(want["event"].as_str().unwrap()).unwrap(),
                "{at}: data"
            );
        }
    }
}

#[test]
fn trustee_ccels_replay_to_the_sources_rtmrs() {
    for (name, rtmrs, _) in trustee_ccels() {
        let log = EventLog::parse(&read(&format!("eventlog/trustee-ccel/{name}"))).unwrap();
        assert_eq!(replay_rtmrs(&log).unwrap(), rtmrs, "{name}");
        check_rtmrs(&log, &rtmrs).unwrap();
        // The generic replay keys by CC MR index: index i + 1 is RTMR i.
        let by_index = replay(&log, DigestAlgorithm::Sha384).unwrap();
        for (index, value) in &by_index {
            assert_eq!(
                value.as_slice(),
                rtmrs[usize::try_from(*index).unwrap() - 1]
            );
        }
    }
}

/// RTMR0..3 of a v4 TDX quote: the 48-byte quote header, then the TD report body with
/// TEE_TCB_SVN (16), MRSEAM (48), MRSIGNERSEAM (48), SEAMATTRIBUTES (8), TDATTRIBUTES (8),
/// XFAM (8), MRTD, MRCONFIGID, MROWNER, MROWNERCONFIG (48 each), then RTMR0..3 and REPORTDATA.
const QUOTE_RTMR0: usize = 48 + 16 + 48 + 48 + 8 + 8 + 8 + 4 * 48;
const QUOTE_REPORT_DATA: usize = QUOTE_RTMR0 + 4 * 48;

fn quote_rtmrs(quote: &[u8]) -> Rtmrs {
    let mut rtmrs = [[0u8; 48]; 4];
    for (i, rtmr) in rtmrs.iter_mut().enumerate() {
        let at = QUOTE_RTMR0 + 48 * i;
        rtmr.copy_from_slice(&quote[at..at + 48]);
    }
    rtmrs
}

#[test]
fn go_tdx_guest_ccel_replays_to_the_rtmrs_of_its_td_quote() {
    let data = read("eventlog/go-tdx-guest-ccel/ccel_ccel_data.dat");
    let table = CcelTable::parse(&read("eventlog/go-tdx-guest-ccel/ccel_ccel_table.dat")).unwrap();
    assert_eq!(table.cc_type(), 2, "tdx");
    assert_eq!(
        table.log_area_minimum_length(),
        u64::try_from(data.len()).unwrap()
    );
    let quote = read("eventlog/go-tdx-guest-ccel/ccel_cos-113-tdx-quote.dat");
    assert_eq!(&quote[..2], &[4, 0], "a v4 quote");
    assert_eq!(
        &quote[QUOTE_REPORT_DATA..QUOTE_REPORT_DATA + 64],
        read("eventlog/go-tdx-guest-ccel/ccel_nonce.dat").as_slice()
    );
    let expected = quote_rtmrs(&quote);

    let log = EventLog::parse(&data).unwrap();
    assert_eq!(log.events().len(), 43);
    assert_eq!(log.trailing_bytes(), data.len() - 18_101);
    assert_eq!(replay_rtmrs(&log).unwrap(), expected);
    check_rtmrs(&log, &expected).unwrap();
    assert_eq!(expected[3], [0; 48], "nothing extends RTMR3");
}

/// Reads a protobuf varint.
fn varint(bytes: &[u8], at: &mut usize) -> u64 {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = bytes[*at];
        *at += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            break;
        }
    }
    v
}

/// go-tpm-tools `Pcrs { hash = 1; map<uint32, bytes> pcrs = 2 }`: (hash, index → value).
fn gce_pcrs(bytes: &[u8]) -> (u64, BTreeMap<u32, Vec<u8>>) {
    let (mut at, mut hash, mut pcrs) = (0, 0, BTreeMap::new());
    while at < bytes.len() {
        match varint(bytes, &mut at) {
            0x08 => hash = varint(bytes, &mut at),
            0x12 => {
                let len = usize::try_from(varint(bytes, &mut at)).unwrap();
                let entry = &bytes[at..at + len];
                at += len;
                let (mut e, mut index, mut digest) = (0, 0u32, Vec::new());
                while e < entry.len() {
                    match varint(entry, &mut e) {
                        0x08 => index = u32::try_from(varint(entry, &mut e)).unwrap(),
                        0x12 => {
                            let l = usize::try_from(varint(entry, &mut e)).unwrap();
                            digest = entry[e..e + l].to_vec();
                            e += l;
                        }
                        tag => panic!("unexpected map entry tag {tag}"),
                    }
                }
                pcrs.insert(index, digest);
            }
            tag => panic!("unexpected Pcrs tag {tag}"),
        }
    }
    (hash, pcrs)
}

/// The quoted values of the PCRs the log extends.
fn covered(
    log: &EventLog,
    alg: DigestAlgorithm,
    quoted: &BTreeMap<u32, Vec<u8>>,
) -> BTreeMap<u32, Vec<u8>> {
    replay(log, alg)
        .unwrap()
        .keys()
        .map(|i| (*i, quoted[i].clone()))
        .collect()
}

#[test]
fn gce_vtpm_log_replays_to_the_verified_quote() {
    let log = EventLog::parse(&read(
        "eventlog/go-tpm-tools-gce/gce-cos-85-nonce9009-eventlog.bin",
    ))
    .unwrap();
    assert_eq!(
        log.spec_id().algorithms(),
        &[
            DigestAlgorithm::Sha1,
            DigestAlgorithm::Sha256,
            DigestAlgorithm::Sha384
        ]
    );
    assert_eq!(log.events().len(), 44);
    assert_eq!(log.trailing_bytes(), 0);

    // The SHA-256 quote of the same attestation, verified with its AK (tpm vectors), then the
    // log checked against the verified PCR values: the path a verifier takes.
    let dir = "tpm/go-tpm-tools-gce/decoded-gce-cos-85-nonce9009";
    let (_, quoted) = gce_pcrs(&read(&format!("{dir}/quote1_field3.bin")));
    let pcrs: Vec<PcrValue> = quoted
        .iter()
        .map(|(i, d)| PcrValue {
            index: u8::try_from(*i).unwrap(),
            digest: d.clone(),
        })
        .collect();
    let verified = verify_quote_with_key(
        &read(&format!("{dir}/quote1_field1.bin")),
        &read(&format!("{dir}/quote1_field2.bin")),
        &AkPublic::from_tpmt_public(&read(&format!("{dir}/field1.bin"))).unwrap(),
        &pcrs,
        &[0x90, 0x09],
    )
    .unwrap();
    let verified: BTreeMap<u32, Vec<u8>> = verified
        .pcrs()
        .iter()
        .map(|(i, d)| (u32::from(*i), d.to_vec()))
        .collect();
    let sha256 = covered(&log, DigestAlgorithm::Sha256, &verified);
    assert_eq!(
        sha256.keys().copied().collect::<Vec<_>>(),
        (0..10).collect::<Vec<_>>()
    );
    check_against(&log, DigestAlgorithm::Sha256, &sha256).unwrap();

    // The SHA-1 and SHA-384 banks, against the values shipped with their quotes.
    for (file, alg, hash) in [
        (
            "gce-cos-85-nonce9009-pcrs-sha1.bin",
            DigestAlgorithm::Sha1,
            4,
        ),
        (
            "gce-cos-85-nonce9009-pcrs-sha384.bin",
            DigestAlgorithm::Sha384,
            0x0c,
        ),
    ] {
        let (h, quoted) = gce_pcrs(&read(&format!("eventlog/go-tpm-tools-gce/{file}")));
        assert_eq!(h, hash);
        check_against(&log, alg, &covered(&log, alg, &quoted)).unwrap();
    }
    assert!(matches!(
        check_against(&log, DigestAlgorithm::Sha512, &BTreeMap::new()),
        Err(ReplayError::Log(_))
    ));
}

#[test]
fn unpaired_gce_log_parses_and_replays() {
    let log = EventLog::parse(&read("eventlog/go-tpm-tools-gce/cos-85-amd-sev.bin")).unwrap();
    assert_eq!(log.events().len(), 45);
    assert!(log
        .events()
        .iter()
        .any(|e| e.event_type() == EventType::EfiBootServicesApplication));
    for alg in [
        DigestAlgorithm::Sha1,
        DigestAlgorithm::Sha256,
        DigestAlgorithm::Sha384,
    ] {
        let pcrs = replay(&log, alg).unwrap();
        assert_eq!(
            pcrs.keys().copied().collect::<Vec<_>>(),
            (0..10).collect::<Vec<_>>()
        );
        assert!(pcrs.values().all(|v| v.len() == alg.digest_bytes()));
    }
}

/// The SHA-384 value of CC MR `index` after the first `n` of its events.
fn prefix_value(log: &EventLog, index: u32, n: usize) -> Vec<u8> {
    log.events()
        .iter()
        .filter(|e| e.pcr_index() == index && e.event_type() != EventType::NoAction)
        .take(n)
        .fold(vec![0u8; 48], |acc, e| {
            let mut h = sha2::Sha384::new();
            h.update(&acc);
            h.update(e.digest(DigestAlgorithm::Sha384).unwrap());
            h.finalize().to_vec()
        })
}

#[test]
fn mismatches_name_the_rtmr_and_the_event() {
    let bytes = read("eventlog/trustee-ccel/CCEL_data_ovmf");
    let log = EventLog::parse(&bytes).unwrap();
    let rtmrs = replay_rtmrs(&log).unwrap();
    let of_rtmr1: Vec<usize> = (0..log.events().len())
        .filter(|i| log.events()[*i].pcr_index() == 2)
        .collect();
    assert!(of_rtmr1.len() > 3);

    // A modified digest: the event's own RTMR is named, with its last event.
    let target = of_rtmr1[1];
    let digest = log.events()[target]
        .digest(DigestAlgorithm::Sha384)
        .unwrap()
        .to_vec();
    let at = bytes
        .windows(48)
        .position(|w| w == digest.as_slice())
        .unwrap();
    let mut modified = bytes.clone();
    modified[at + 7] ^= 0x40;
    let modified = EventLog::parse(&modified).unwrap();
    let Err(ReplayError::Mismatch(m)) = check_rtmrs(&modified, &rtmrs) else {
        panic!("a modified digest must not replay");
    };
    assert_eq!(m.register, Register::Rtmr(1));
    assert_eq!(m.expected, rtmrs[1]);
    assert_eq!(m.events, of_rtmr1.len());
    assert_eq!(m.last_event, of_rtmr1.last().copied());
    assert_eq!(m.expected_after, None);

    // The quote saw only the first two RTMR1 events: the log's third one is where it broke.
    let mut short = rtmrs;
    short[1].copy_from_slice(&prefix_value(&log, 2, 2));
    let Err(ReplayError::Mismatch(m)) = check_rtmrs(&log, &short) else {
        panic!("extra events must not replay");
    };
    assert_eq!(m.register, Register::Rtmr(1));
    assert_eq!(
        m.expected_after,
        Some(Prefix {
            extends: 2,
            first_unseen: of_rtmr1[2]
        })
    );
    let text = m.to_string();
    assert!(text.starts_with("rtmr 1 replays to"), "{text}");
    assert!(
        text.contains(&format!("event {} and later", of_rtmr1[2])),
        "{text}"
    );
}

/// Offset where the events of `bytes` end (the start of the padding).
fn events_end(bytes: &[u8]) -> usize {
    bytes.len() - EventLog::parse(bytes).unwrap().trailing_bytes()
}

/// What a replay of `log` gives in every bank it has (errors included).
fn replays(log: &EventLog) -> Vec<Result<BTreeMap<u32, Vec<u8>>, String>> {
    log.spec_id()
        .algorithms()
        .iter()
        .map(|alg| replay(log, *alg).map_err(|e| e.to_string()))
        .collect()
}

/// What replay reads from each event.
fn replayed_inputs(log: &EventLog) -> Vec<(u32, bool, Vec<Vec<u8>>)> {
    log.events()
        .iter()
        .map(|e| {
            (
                e.pcr_index(),
                e.event_type() == EventType::NoAction,
                e.digests().iter().map(|d| d.value().to_vec()).collect(),
            )
        })
        .collect()
}

/// Every single-byte change and every truncation of `bytes` (a log cut to its events and 64
/// bytes of padding) gives a typed error, or a log that differs from the original; when the
/// change reaches anything replay reads (register index, event type, digest, or drops an
/// extending event), the replay differs too. Never a panic.
fn sweep(name: &str, full: &[u8]) {
    let end = events_end(full);
    let bytes = &full[..(end + 64).min(full.len())];
    let original = EventLog::parse(bytes).unwrap();
    let base = replays(&original);
    let inputs = replayed_inputs(&original);
    for at in 0..bytes.len() {
        for flip in [0x01u8, 0xff] {
            let mut bad = bytes.to_vec();
            bad[at] ^= flip;
            let Ok(log) = EventLog::parse(&bad) else {
                continue;
            };
            assert_ne!(
                log, original,
                "{name}: byte {at} ^ {flip:#x} parsed the same"
            );
            if replayed_inputs(&log) != inputs {
                assert_ne!(
                    replays(&log),
                    base,
                    "{name}: byte {at} ^ {flip:#x} replays the same"
                );
            }
        }
    }
    for len in 0..bytes.len() {
        let Ok(log) = EventLog::parse(&bytes[..len]) else {
            continue;
        };
        let kept = log.events().len();
        assert!(
            original.events().starts_with(log.events()),
            "{name}: cut at {len}"
        );
        if kept == original.events().len() {
            assert!(len >= end, "{name}: cut at {len} kept every event");
            assert_eq!(log.trailing_bytes(), len - end);
        } else if original.events()[kept..]
            .iter()
            .any(|e| e.event_type() != EventType::NoAction)
        {
            assert_ne!(replays(&log), base, "{name}: cut at {len} replays the same");
        }
    }
}

#[test]
fn byte_flip_and_truncation_sweep_ovmf_ccel() {
    sweep(
        "CCEL_data_ovmf",
        &read("eventlog/trustee-ccel/CCEL_data_ovmf"),
    );
}

#[test]
fn byte_flip_and_truncation_sweep_td_shim_ccel() {
    sweep("CCEL_data", &read("eventlog/trustee-ccel/CCEL_data"));
}

#[test]
fn byte_flip_and_truncation_sweep_gce_tpm_log() {
    sweep(
        "gce",
        &read("eventlog/go-tpm-tools-gce/gce-cos-85-nonce9009-eventlog.bin"),
    );
}

/// A growing log appraised in deltas gives the same registers as the whole log at once:
/// the real GCE log cut at every event, the head replayed from zero and the tail continued
/// from the head's registers with `check_delta`.
#[test]
fn a_real_log_appraised_in_deltas_matches_the_whole_replay() {
    let bytes = read("eventlog/go-tpm-tools-gce/gce-cos-85-nonce9009-eventlog.bin");
    let whole = EventLog::parse(&bytes).unwrap();
    let n = whole.events().len();
    let all = replay(&whole, DigestAlgorithm::Sha256).unwrap();
    for cut in 0..=n {
        let (tail, count) = EventLog::tail(&bytes, cut).unwrap();
        assert_eq!(count, n);
        let tail = EventLog::parse(&tail).unwrap();
        assert_eq!(tail.events().len(), n - cut, "tail from event {cut}");
        assert_eq!(tail.events(), &whole.events()[cut..]);
        // The head: header and events `..cut`, i.e. the whole log less the tail's events.
        let (full, _) = EventLog::tail(&bytes, 0).unwrap();
        let (rest, _) = EventLog::tail(&bytes, cut).unwrap();
        let (header, _) = EventLog::tail(&bytes, n).unwrap();
        let head_bytes = full[..full.len() - (rest.len() - header.len())].to_vec();
        let head = EventLog::parse(&head_bytes).unwrap();
        assert_eq!(head.events().len(), cut);
        let base = replay(&head, DigestAlgorithm::Sha256).unwrap();
        let (covered, after) = check_delta(&tail, DigestAlgorithm::Sha256, &base, &all).unwrap();
        assert_eq!(covered, n - cut, "delta from event {cut}");
        assert_eq!(after, all, "delta from event {cut}");
        // A quote taken before the last event was extended: the prefix without it matches.
        if cut < n {
            let before_last = {
                let (full, _) = EventLog::tail(&bytes, 0).unwrap();
                let (last, _) = EventLog::tail(&bytes, n - 1).unwrap();
                let (header, _) = EventLog::tail(&bytes, n).unwrap();
                replay(
                    &EventLog::parse(&full[..full.len() - (last.len() - header.len())]).unwrap(),
                    DigestAlgorithm::Sha256,
                )
                .unwrap()
            };
            let (covered, state) =
                check_delta(&tail, DigestAlgorithm::Sha256, &base, &before_last).unwrap();
            assert_eq!(
                covered,
                n - cut - 1,
                "one event not yet extended, cut {cut}"
            );
            assert_eq!(state, before_last);
        }
    }
    assert!(matches!(
        EventLog::tail(&bytes, n + 1),
        Err(attestation::eventlog::EventLogError::TailBeyondLog { .. })
    ));
}

/// A delta whose events the hardware never saw (a register extended outside the log, or an
/// event dropped from the delta) is a mismatch naming the register.
#[test]
fn a_delta_that_does_not_reach_the_quoted_registers_names_the_register() {
    let bytes = read("eventlog/go-tpm-tools-gce/gce-cos-85-nonce9009-eventlog.bin");
    let whole = EventLog::parse(&bytes).unwrap();
    let n = whole.events().len();
    let all = replay(&whole, DigestAlgorithm::Sha256).unwrap();
    let cut = n / 2;
    let (tail, _) = EventLog::tail(&bytes, cut).unwrap();
    let tail = EventLog::parse(&tail).unwrap();
    // The base claims the verifier saw nothing: the tail alone cannot reach the registers.
    let err = check_delta(&tail, DigestAlgorithm::Sha256, &BTreeMap::new(), &all).unwrap_err();
    assert!(
        matches!(&err, ReplayError::Mismatch(m) if matches!(m.register, Register::Pcr(_))),
        "{err}"
    );
}
