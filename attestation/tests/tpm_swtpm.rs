//! The vTPM attester against a real TPM 2.0 implementation: each test starts its own swtpm
//! (libtpms) on free TCP ports, collects a quote through tss-esapi and verifies it with the
//! libtss2-free verifier. swtpm missing is a failure, never a skip.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test code: a failed expectation is a test failure"
)]

use attestation::tpm::{verify, TpmAttester, TpmError, TpmEvidence};
use attestation::{Attester, BindingValue, EvidenceKind, Nonce};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "../../tests/tests/common/fds.rs"]
mod fds;

/// A running swtpm, killed when dropped.
struct Swtpm {
    child: Child,
    port: u16,
    _state: tempfile::TempDir,
}

impl Swtpm {
    /// Starts swtpm on two consecutive free ports (server, control), retrying if another
    /// process took a port between probing and binding.
    fn start() -> Self {
        for _ in 0..10 {
            let port = free_port_pair();
            let state = tempfile::tempdir().unwrap();
            let spawned = fds::no_inherited_descriptors(&mut Command::new("swtpm"))
                .arg("socket")
                .arg("--tpm2")
                .arg("--tpmstate")
                .arg(format!("dir={}", state.path().display()))
                .arg("--server")
                .arg(format!("type=tcp,port={port},bindaddr=127.0.0.1"))
                .arg("--ctrl")
                .arg(format!("type=tcp,port={},bindaddr=127.0.0.1", port + 1))
                .arg("--flags")
                .arg("not-need-init,startup-clear")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn();
            let child = match spawned {
                Ok(child) => child,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                    "swtpm is not installed; these tests need it: \
                     apt-get install -y swtpm swtpm-tools libtss2-dev"
                ),
                Err(e) => panic!("could not start swtpm: {e}"),
            };
            let mut tpm = Swtpm {
                child,
                port,
                _state: state,
            };
            if tpm.wait_ready() {
                return tpm;
            }
        }
        panic!("swtpm did not start listening after 10 attempts");
    }

    /// Waits until the server port accepts; false if swtpm exited first (port taken).
    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }

    fn attester(&self) -> TpmAttester {
        TpmAttester::connect(&self.tcti()).unwrap()
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port P such that P and P+1 were both free a moment ago.
fn free_port_pair() -> u16 {
    loop {
        let first = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = first.local_addr().unwrap().port();
        if port < u16::MAX && TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
}

fn binding_for(attester: &TpmAttester, nonce: u8) -> BindingValue {
    BindingValue::compute(&Nonce::new([nonce; 32]), attester.ak_public(), &[7; 32])
}

fn collect(attester: &mut TpmAttester, binding: &BindingValue) -> TpmEvidence {
    let item = attester.collect(binding).unwrap();
    assert_eq!(item.kind, EvidenceKind::Tpm);
    TpmEvidence::from_item_data(&item.data).unwrap()
}

#[test]
fn collected_quote_verifies_with_the_binding_value() {
    let tpm = Swtpm::start();
    let mut attester = tpm.attester();
    assert_eq!(attester.kind(), EvidenceKind::Tpm);
    assert_eq!(attester.level(), None);
    let binding = binding_for(&attester, 1);
    let qualifying = binding.tpm_qualifying_data();
    assert_eq!(
        qualifying.len(),
        64,
        "the full binding value fits TPM2B_DATA"
    );

    let evidence = collect(&mut attester, &binding);
    let quote = verify(&evidence, qualifying).unwrap();
    assert_eq!(
        quote.pcrs().keys().copied().collect::<Vec<_>>(),
        attestation::tpm::QUOTED_PCRS.collect::<Vec<_>>()
    );
    assert_eq!(
        quote.ak_public_digest(),
        attestation::sha256(attester.ak_public())
    );
    assert!(quote.clock_ms() > 0);
    assert_ne!(quote.firmware_version(), 0);
    // A fresh swtpm has measured nothing: PCRs 0-15 are all zero.
    assert!(quote.pcrs().values().all(|v| *v == [0; 32]));
}

#[test]
fn wrong_qualifying_data_is_rejected() {
    let tpm = Swtpm::start();
    let mut attester = tpm.attester();
    let binding = binding_for(&attester, 1);
    let evidence = collect(&mut attester, &binding);
    let other = binding_for(&attester, 2);
    assert!(matches!(
        verify(&evidence, other.tpm_qualifying_data()),
        Err(TpmError::QualifyingDataMismatch)
    ));
}

#[test]
fn changed_pcr_value_is_rejected() {
    let tpm = Swtpm::start();
    let mut attester = tpm.attester();
    let binding = binding_for(&attester, 1);
    let mut evidence = collect(&mut attester, &binding);
    evidence.pcrs[3].digest[31] ^= 0x01;
    assert!(matches!(
        verify(&evidence, binding.tpm_qualifying_data()),
        Err(TpmError::PcrDigestMismatch)
    ));
    let mut evidence = collect(&mut attester, &binding);
    evidence.pcrs.pop();
    assert!(matches!(
        verify(&evidence, binding.tpm_qualifying_data()),
        Err(TpmError::PcrSelectionMismatch)
    ));
}

#[test]
fn every_bit_flip_in_attest_or_signature_is_rejected() {
    let tpm = Swtpm::start();
    let mut attester = tpm.attester();
    let binding = binding_for(&attester, 1);
    let evidence = collect(&mut attester, &binding);
    let qualifying = binding.tpm_qualifying_data();
    for byte in 0..evidence.attest.len() {
        for bit in 0..8 {
            let mut bad = evidence.clone();
            bad.attest[byte] ^= 1 << bit;
            assert!(
                verify(&bad, qualifying).is_err(),
                "attest bit {bit} of byte {byte}"
            );
        }
    }
    for byte in 0..evidence.signature.len() {
        let mut bad = evidence.clone();
        bad.signature[byte] ^= 0x10;
        assert!(verify(&bad, qualifying).is_err(), "signature byte {byte}");
    }
}

#[test]
fn extending_a_pcr_changes_the_next_quote() {
    let tpm = Swtpm::start();
    let mut attester = tpm.attester();
    let binding = binding_for(&attester, 1);
    let before = verify(
        &collect(&mut attester, &binding),
        binding.tpm_qualifying_data(),
    )
    .unwrap();

    let measurement = attestation::sha256(b"enclave manifest");
    attester.extend_pcr(12, measurement).unwrap();

    let after = verify(
        &collect(&mut attester, &binding),
        binding.tpm_qualifying_data(),
    )
    .unwrap();
    let mut expected = before.pcrs()[&12].to_vec();
    expected.extend_from_slice(&measurement);
    assert_eq!(after.pcrs()[&12], attestation::sha256(&expected));
    for (index, value) in before.pcrs() {
        if *index != 12 {
            assert_eq!(after.pcrs()[index], *value, "pcr {index} must not change");
        }
    }
    assert_eq!(before.ak_public_digest(), after.ak_public_digest());
}

/// With an event log, each quote ships the log from the event the verifier names: the
/// whole log at first, only the new events later, the whole log again when the verifier
/// names an event the log does not have (a new boot). The log is a real GCE vTPM log; it
/// does not replay to this swtpm (appraisal is tested end to end in `e2e`), this checks
/// what is shipped.
#[test]
fn quotes_ship_the_event_log_from_the_event_the_verifier_names() {
    use attestation::eventlog::EventLog;
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors/eventlog/go-tpm-tools-gce/gce-cos-85-nonce9009-eventlog.bin");
    let whole = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let tpm = Swtpm::start();
    let mut attester = tpm.attester().with_event_log(&path);
    let binding = binding_for(&attester, 1);

    let first = collect(&mut attester, &binding).event_log.unwrap();
    assert_eq!((first.first_event, first.total_events), (0, 44));
    assert_eq!(first.log, EventLog::tail(&whole, 0).unwrap().0);

    attester.event_log_from(40);
    let delta = collect(&mut attester, &binding).event_log.unwrap();
    assert_eq!((delta.first_event, delta.total_events), (40, 44));
    let parsed = EventLog::parse(&delta.log).unwrap();
    assert_eq!(
        parsed.events(),
        &EventLog::parse(&whole).unwrap().events()[40..]
    );
    assert!(delta.log.len() < whole.len() / 4, "a delta is small");

    attester.event_log_from(45);
    let again = collect(&mut attester, &binding).event_log.unwrap();
    assert_eq!((again.first_event, again.total_events), (0, 44));

    // Without a log nothing is shipped.
    assert!(collect(&mut tpm.attester(), &binding).event_log.is_none());
}

/// Set in the child processes of the test below: the TCTI to attach to before exiting.
const LEAK_ENV: &str = "TPM_SWTPM_EXIT_HOLDING_AK";

/// A kernel killed with SIGKILL never flushes its AK, and swtpm (no resource manager) keeps
/// it loaded: without the clean-up in `TpmAttester::connect`, the third process in a row
/// fails `create ak` with "out of memory for object contexts" and a restarted kernel never
/// boots again (tests/tests/e2e/kill9.rs found it). Here child processes (this test binary, run
/// again) attach and exit without running any destructor, five times in a row; each must
/// attach, and afterwards this process still gets a verifying quote.
#[test]
fn attesters_of_dead_processes_do_not_exhaust_the_tpm() {
    if let Ok(tcti) = std::env::var(LEAK_ENV) {
        let attester = TpmAttester::connect(&tcti).unwrap();
        assert!(!attester.ak_public().is_empty());
        // Exit with the AK loaded: no destructor runs, as after SIGKILL.
        std::process::exit(0);
    }
    let tpm = Swtpm::start();
    for i in 0..5 {
        let out = Command::new(std::env::current_exe().unwrap())
            .args([
                "attesters_of_dead_processes_do_not_exhaust_the_tpm",
                "--exact",
                "--test-threads=1",
            ])
            .env(LEAK_ENV, tpm.tcti())
            .env("RUST_BACKTRACE", "0")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "process {i} could not attach to the TPM: {}",
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|l| l.contains("Err"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    let mut attester = tpm.attester();
    let binding = binding_for(&attester, 9);
    let evidence = collect(&mut attester, &binding);
    verify(&evidence, binding.tpm_qualifying_data()).unwrap();
}
