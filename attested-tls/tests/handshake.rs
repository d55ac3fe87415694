//! Real TLS 1.3 handshakes between attested endpoints, over real sockets, with evidence made
//! by the real software attester, bundles signed by a real attestation key and results
//! signed by a real verifier key. Each check of the verifier is made to fail once.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test helpers outside #[test] functions: a failed unwrap is a failed test"
)]

use attestation::ak::AttestationKey;
use attestation::appraisal::AppraisalPolicy;
use attestation::bundle::{sign_bundle, BundleClaims, BUNDLE_VERSION};
use attestation::result::{claim, AttestationResult, ResultSigner, Tier, TrustClaim, EAR_PROFILE};
use attestation::{Attester, BindingValue, Level, Nonce};
use attested_tls::cert::build_certificate;
use attested_tls::verify::{peer_of, verify_certificate};
use attested_tls::{
    client_config, server_config, AttestationSigner, AttestedCertResolver, AttestedTlsError,
    Evidence, PeerPolicy, SERVER_NAME,
};
use std::sync::Arc;
use tokio::net::UnixStream;

/// A kernel's attestation: its AK and evidence as a verifier would have certified it.
struct Attested {
    ak: Arc<AttestationKey>,
    evidence: Evidence,
}

fn attest(
    kernel_id: &str,
    verifier: &ResultSigner,
    tweak: impl FnOnce(&mut AttestationResult),
) -> Attested {
    let ak = AttestationKey::generate().unwrap();
    let nonce = Nonce::new([7; 32]);
    let draft = [9u8; 32];
    let binding = BindingValue::compute(&nonce, ak.public_key(), &draft);
    let item = attestation::software::SoftwareAttester::new()
        .unwrap()
        .collect(&binding)
        .unwrap();
    let now = attestation::now_ms();
    let bundle = sign_bundle(
        &BundleClaims {
            version: BUNDLE_VERSION,
            kernel_id: kernel_id.into(),
            level: Level::L1,
            nonce: nonce.as_bytes().to_vec(),
            manifest_draft_hash: draft.to_vec(),
            ak_public: ak.public_key().to_vec(),
            key_exchange_public: vec![3; 32],
            created_at_ms: now,
            items: vec![item],
        },
        &ak,
    )
    .unwrap();
    let trust_vector = vec![TrustClaim {
        claim: claim::INSTANCE_IDENTITY.into(),
        tier: Tier::Affirming,
        reason: "software platform verified".into(),
    }];
    let mut result = AttestationResult {
        eat_profile: EAR_PROFILE.into(),
        issued_at_ms: now,
        expires_at_ms: now + 60_000,
        verifier_id: "test-verifier".into(),
        policy_id: "test".into(),
        kernel_id: kernel_id.into(),
        level: Level::L1,
        status: AttestationResult::overall(&trust_vector),
        trust_vector,
        nonce: nonce.as_bytes().to_vec(),
        bundle_digest: attestation::sha256(&bundle).to_vec(),
        ak_public_digest: attestation::sha256(ak.public_key()).to_vec(),
        reference_digest: vec![0; 32],
    };
    tweak(&mut result);
    Attested {
        ak: Arc::new(ak),
        evidence: Evidence {
            bundle,
            result: verifier.sign(&result).unwrap(),
        },
    }
}

fn verifier() -> ResultSigner {
    ResultSigner::generate().unwrap().0
}

fn policy(verifier: &ResultSigner) -> PeerPolicy {
    PeerPolicy::new(verifier.public_key().to_vec(), [Level::L1])
}

fn resolver(a: &Attested) -> Arc<AttestedCertResolver<Evidence>> {
    Arc::new(AttestedCertResolver::new(
        a.evidence.clone(),
        Arc::clone(&a.ak) as Arc<dyn AttestationSigner>,
    ))
}

/// Runs one handshake plus a ping over a Unix socket pair; returns each side's outcome.
async fn handshake(
    server: rustls::ServerConfig,
    client: rustls::ClientConfig,
) -> (Result<(), String>, Result<Vec<u8>, String>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (s, c) = UnixStream::pair().unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
    let server = async move {
        let mut tls = acceptor.accept(s).await.map_err(|e| e.to_string())?;
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
        tls.write_all(b"pong").await.map_err(|e| e.to_string())?;
        tls.shutdown().await.map_err(|e| e.to_string())
    };
    let client = async move {
        let name = SERVER_NAME.try_into().unwrap();
        let mut tls = connector
            .connect(name, c)
            .await
            .map_err(|e| e.to_string())?;
        tls.write_all(b"ping").await.map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; 4];
        tls.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
        let (_, conn) = tls.get_ref();
        let der = conn.peer_certificates().unwrap()[0].clone();
        Ok::<_, String>((buf, der))
    };
    let (s, c) = tokio::join!(server, client);
    (s, c.map(|(buf, _)| buf))
}

fn client_refusal(c: &Result<Vec<u8>, String>) -> &str {
    c.as_ref().err().map(String::as_str).unwrap_or("")
}

#[tokio::test]
async fn a_client_accepts_an_attested_server_and_learns_who_it_is() {
    let v = verifier();
    let k1 = attest("k1", &v, |_| {});
    let server = server_config(resolver(&k1), None).unwrap();
    let client = client_config(policy(&v).kernels(["k1"]), None).unwrap();
    let (s, c) = handshake(server, client).await;
    s.unwrap();
    assert_eq!(c.unwrap(), b"pong");

    let der = build_certificate(k1.ak.as_ref(), &k1.evidence, "k1").unwrap();
    let peer = peer_of(Some(&[der]), &policy(&v)).unwrap();
    assert_eq!(peer.kernel_id(), "k1");
    assert_eq!(peer.level(), Level::L1);
    assert_eq!(peer.public_key(), k1.ak.public_key());
    assert_eq!(
        peer.bundle_digest(),
        &attestation::sha256(&k1.evidence.bundle)
    );
}

/// Expects the client to refuse the server at handshake, with `why` in its error.
async fn refused(server: rustls::ServerConfig, client: rustls::ClientConfig, why: &str) {
    let (_, c) = handshake(server, client).await;
    let err = client_refusal(&c);
    assert!(
        c.is_err(),
        "client accepted a server it should refuse ({why})"
    );
    assert!(err.contains(why), "expected `{why}` in `{err}`");
}

#[tokio::test]
async fn each_attestation_check_refuses_the_handshake() {
    let v = verifier();
    let p = policy(&v);
    let server = |a: &Attested| server_config(resolver(a), None).unwrap();
    let client = |p: PeerPolicy| client_config(p, None).unwrap();

    // A result signed by a verifier the client does not pin.
    let rogue = verifier();
    let k = attest("k1", &rogue, |_| {});
    refused(server(&k), client(p.clone()), "Result(BadSignature)").await;

    // Contraindicated, expired, about another bundle / key / kernel / nonce.
    let k = attest("k1", &v, |r| r.status = Tier::Contraindicated);
    refused(server(&k), client(p.clone()), "NotAffirming").await;
    let k = attest("k1", &v, |r| r.expires_at_ms = r.issued_at_ms - 1);
    refused(server(&k), client(p.clone()), "Expired").await;
    let k = attest("k1", &v, |r| r.bundle_digest = vec![0; 32]);
    refused(server(&k), client(p.clone()), "ResultForOtherBundle").await;
    let k = attest("k1", &v, |r| r.ak_public_digest = vec![0; 32]);
    refused(server(&k), client(p.clone()), "ResultForOtherKey").await;
    let k = attest("k1", &v, |r| r.kernel_id = "k2".into());
    refused(server(&k), client(p.clone()), "ResultForOtherKernel").await;
    let k = attest("k1", &v, |r| r.nonce = vec![8; 32]);
    refused(server(&k), client(p.clone()), "ResultForOtherNonce").await;
    let k = attest("k1", &v, |r| r.issued_at_ms += 3_600_000);
    refused(server(&k), client(p.clone()), "IssuedInFuture").await;

    // The client's own policy: another kernel, another level.
    let k = attest("k1", &v, |_| {});
    refused(
        server(&k),
        client(p.clone().kernels(["k2"])),
        "KernelNotAllowed",
    )
    .await;
    let l3 = PeerPolicy::new(v.public_key().to_vec(), [Level::L3]);
    refused(server(&k), client(l3), "LevelNotAllowed").await;

    // A certificate whose key is not the bundle's AK (the evidence of k, a key of its own).
    let other = Attested {
        ak: Arc::new(AttestationKey::generate().unwrap()),
        evidence: k.evidence.clone(),
    };
    refused(server(&other), client(p.clone()), "KeyNotAttestationKey").await;
}

/// Presents one certified key, whatever the client asks.
#[derive(Debug)]
struct Fixed(Arc<rustls::sign::CertifiedKey>);

impl rustls::server::ResolvesServerCert for Fixed {
    fn resolve(
        &self,
        _hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(Arc::clone(&self.0))
    }
}

#[tokio::test]
async fn a_replayed_certificate_without_the_attestation_key_fails() {
    // The host copies k1's genuine certificate and presents it from a server holding
    // another key: the certificate passes every attestation check, the handshake
    // signature does not.
    let v = verifier();
    let k1 = attest("k1", &v, |_| {});
    let genuine = build_certificate(k1.ak.as_ref(), &k1.evidence, "k1").unwrap();
    let impostor: Arc<dyn AttestationSigner> = Arc::new(AttestationKey::generate().unwrap());
    let key = rustls::sign::CertifiedKey::new(
        vec![genuine],
        Arc::new(attested_tls::signer::TlsKey(impostor)),
    );
    let server = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .with_no_client_auth()
    .with_cert_resolver(Arc::new(Fixed(Arc::new(key))));
    refused(
        server,
        client_config(policy(&v), None).unwrap(),
        "BadSignature",
    )
    .await;
}

#[tokio::test]
async fn ordinary_certificates_and_missing_evidence_are_refused() {
    let v = verifier();
    // A well-formed P-256 certificate from a CA-less world: no attestation extension.
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let plain = rcgen::CertificateParams::new(vec![SERVER_NAME.into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let err = verify_certificate(plain.der(), &policy(&v), attestation::now_ms()).unwrap_err();
    assert!(matches!(err, AttestedTlsError::NoEvidence), "{err}");

    // A server with nothing to present (not unsealed) fails the handshake itself.
    #[derive(Debug)]
    struct Nothing;
    impl attested_tls::EvidenceSource for Nothing {
        fn current(&self) -> Option<Evidence> {
            None
        }
    }
    let ak: Arc<dyn AttestationSigner> = Arc::new(AttestationKey::generate().unwrap());
    let server = server_config(Arc::new(AttestedCertResolver::new(Nothing, ak)), None).unwrap();
    let (s, c) = handshake(server, client_config(policy(&v), None).unwrap()).await;
    assert!(s.is_err() && c.is_err());
}

#[tokio::test]
async fn clients_may_appraise_the_evidence_against_their_own_policy() {
    let v = verifier();
    let k1 = attest("k1", &v, |_| {});
    let own = |require_tpm: bool| {
        AppraisalPolicy::from_json(&format!(
            r#"{{"policy_id":"client","allowed_levels":["KEE1-L1"],"require_tpm":{require_tpm},"max_evidence_age_ms":60000}}"#
        ))
        .unwrap()
    };
    let server = || server_config(resolver(&k1), None).unwrap();
    let accepting = client_config(policy(&v).appraise_with(own(false)), None).unwrap();
    let (_, c) = handshake(server(), accepting).await;
    assert_eq!(c.unwrap(), b"pong");
    // This client also requires a vTPM quote, which the evidence lacks: refused, although
    // the verifier's result is affirming.
    let strict = client_config(policy(&v).appraise_with(own(true)), None).unwrap();
    refused(server(), strict, "Appraisal").await;
}

#[tokio::test]
async fn kernels_authenticate_each_other_mutually() {
    let v = verifier();
    let k1 = attest("k1", &v, |_| {});
    let k2 = attest("k2", &v, |_| {});
    let k3 = attest("k3", &v, |_| {});
    // k1 serves and accepts only k2 as a client.
    let server = || server_config(resolver(&k1), Some(policy(&v).kernels(["k2"]))).unwrap();
    let as_client = |a: &Attested| {
        client_config(
            policy(&v).kernels(["k1"]),
            Some(resolver(a) as Arc<dyn rustls::client::ResolvesClientCert>),
        )
        .unwrap()
    };
    let (s, c) = handshake(server(), as_client(&k2)).await;
    s.unwrap();
    assert_eq!(c.unwrap(), b"pong");
    // k3 is attested too, but not a peer k1 accepts.
    let (s, _) = handshake(server(), as_client(&k3)).await;
    assert!(s.unwrap_err().contains("KernelNotAllowed"));
    // A client without an attested certificate is refused.
    let anonymous = client_config(policy(&v), None).unwrap();
    let (s, _) = handshake(server(), anonymous).await;
    assert!(s.is_err());
}

#[tokio::test]
async fn optional_client_auth_admits_anonymous_clients_but_appraises_presented_certificates() {
    use attested_tls::{server_config_with, ClientAuth};
    let v = verifier();
    let k1 = attest("k1", &v, |_| {});
    let k2 = attest("k2", &v, |_| {});
    let rogue = attest("k2", &verifier(), |_| {});
    // k1 takes governance clients without a certificate and peer k2 with one; the relying
    // party's own last check refuses k3 as if the verifier's feed had revoked it.
    let peers = policy(&v).check(|p| match p.kernel_id() {
        "k3" => Err("`k3` is revoked by the verifier".into()),
        _ => Ok(()),
    });
    let server = || server_config_with(resolver(&k1), ClientAuth::Optional(peers.clone())).unwrap();
    let as_client = |a: &Attested| {
        client_config(
            policy(&v).kernels(["k1"]),
            Some(resolver(a) as Arc<dyn rustls::client::ResolvesClientCert>),
        )
        .unwrap()
    };
    // Anonymous: admitted, and the server sees no client certificate.
    let (s, c) = handshake(server(), client_config(policy(&v), None).unwrap()).await;
    s.unwrap();
    assert_eq!(c.unwrap(), b"pong");
    // An attested peer: admitted.
    let (s, c) = handshake(server(), as_client(&k2)).await;
    s.unwrap();
    assert_eq!(c.unwrap(), b"pong");
    // A certificate whose result another verifier signed: refused, not let in anonymously.
    let (s, c) = handshake(server(), as_client(&rogue)).await;
    assert!(s.unwrap_err().contains("BadSignature"));
    assert!(c.is_err());
    // An attested kernel the relying party's own check refuses.
    let k3 = attest("k3", &v, |_| {});
    let (s, _) = handshake(server(), as_client(&k3)).await;
    let e = s.unwrap_err();
    assert!(e.contains("Refused") && e.contains("revoked"), "{e}");
}

#[test]
fn the_relying_partys_own_check_runs_last_and_names_itself() {
    let v = verifier();
    let k2 = attest("k2", &v, |_| {});
    let der = build_certificate(k2.ak.as_ref(), &k2.evidence, "k2").unwrap();
    let now = attestation::now_ms();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let logging = |p: PeerPolicy| {
        let log = Arc::clone(&seen);
        p.check(move |peer| {
            log.lock().unwrap().push(peer.kernel_id().to_owned());
            Err("not in this ceremony".into())
        })
    };
    let e = verify_certificate(&der, &logging(policy(&v)), now).unwrap_err();
    assert_eq!(e.to_string(), "peer refused: not in this ceremony");
    assert_eq!(*seen.lock().unwrap(), ["k2"]);
    // A certificate that fails an earlier check (another verifier pinned) never reaches it.
    let e = verify_certificate(&der, &logging(policy(&verifier())), now).unwrap_err();
    assert!(matches!(e, AttestedTlsError::Result(_)), "{e}");
    assert_eq!(seen.lock().unwrap().len(), 1);
}
