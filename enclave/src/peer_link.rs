//! Kernel-to-kernel links over mutually attested TLS.
//!
//! Peer methods (`frost_commit`, `frost_sign`, `dkg_round1`, `dkg_round2`; repair travels as
//! DKG rounds) never cross the host in the clear. The kernel that asks ([`dial`]) opens a
//! TLS 1.3 session through its host proxy's TLS egress to the peer's TLS port
//! ([`crate::tls::TLS_PORT`]) and presents its own attested certificate (key = its AK,
//! extension = its newest affirming bundle and the verifier's result about it) as the
//! **client** certificate; the peer's [`attested_tls::AttestedClientVerifier`] appraises it
//! in the handshake and the dialer's [`attested_tls::AttestedServerVerifier`] appraises the
//! peer's certificate the same way, under [`peer_policy`]:
//!
//! * the result verifies under the pinned verifier key, is affirming and unexpired, and is
//!   about exactly the bundle and the AK in the certificate (which TLS proves the peer holds);
//! * the kernel id is a configured peer (for the dialer: exactly the peer behind that port),
//!   not this kernel, and not revoked by the verifier's feed.
//!
//! On the serving side, [`handle`] admits a peer method only from a TLS session whose
//! appraised client identity is the kernel the request's [`PeerAuth`] names, with the same
//! AK; a peer method in plaintext (the governance frame port) or from an anonymous or other
//! TLS client is refused and audited. `PeerAuth` itself is still checked per request
//! (`frost::check_auth`): its result is the sender's newest, so a long-lived pooled session
//! cannot outlive the sender's attestation.
//!
//! During a DKG the kernels are attested but not unsealed: the evidence they present is the
//! affirming pair of that attestation ([`crate::reattest::Gate::set_evidence`], set before
//! the ceremony runs), and they present it only while a ceremony is in progress or once
//! they serve. A halted kernel presents nothing.

use crate::kernel::{events, Kernel};
use crate::transport::Stream;
use attestation::ak::AkError;
use attestation::Level;
use attested_tls::{AttestationSigner, AttestedCertResolver, AttestedPeer, Evidence};
use attested_tls::{EvidenceSource, PeerPolicy};
use std::sync::{Arc, Weak};
use wire::msg::{ErrorCode, KernelState, PeerAuth, Request, Response};

/// The evidence this kernel presents, as TLS server and as TLS client: the newest affirming
/// bundle and result, while it serves or runs a key ceremony.
#[derive(Debug)]
pub(crate) struct KernelEvidence(pub(crate) Weak<Kernel>);

impl EvidenceSource for KernelEvidence {
    fn current(&self) -> Option<Evidence> {
        let kernel = self.0.upgrade()?;
        match kernel.health().state {
            KernelState::Serving => {}
            KernelState::Halted => return None,
            KernelState::Booting | KernelState::Sealed => {
                let in_ceremony = kernel.ceremony.lock().map(|c| c.is_some()).ok()?;
                if !in_ceremony {
                    return None;
                }
            }
        }
        kernel.with_gate(|g| g.evidence()).flatten()
    }
}

/// The kernel's attestation key, signing through the kernel.
#[derive(Debug)]
pub(crate) struct KernelAk {
    kernel: Weak<Kernel>,
    public: Vec<u8>,
}

impl KernelAk {
    pub(crate) fn new(kernel: &Arc<Kernel>) -> Self {
        Self {
            kernel: Arc::downgrade(kernel),
            public: kernel.ak.public_key().to_vec(),
        }
    }
}

impl AttestationSigner for KernelAk {
    fn public_key(&self) -> &[u8] {
        &self.public
    }
    fn sign_fixed(&self, msg: &[u8]) -> Result<Vec<u8>, AkError> {
        self.kernel.upgrade().ok_or(AkError::Sign)?.ak.sign(msg)
    }
}

/// This kernel's attested certificate, for either end of a TLS session.
pub(crate) fn identity(kernel: &Arc<Kernel>) -> Arc<AttestedCertResolver<KernelEvidence>> {
    Arc::new(AttestedCertResolver::new(
        KernelEvidence(Arc::downgrade(kernel)),
        Arc::new(KernelAk::new(kernel)) as Arc<dyn AttestationSigner>,
    ))
}

/// What a kernel accepts of a peer kernel in a TLS handshake: a result signed by the pinned
/// verifier (at whatever level that verifier affirmed), about one of the configured peers,
/// not this kernel, and not revoked by the verifier's feed.
pub fn peer_policy(kernel: &Arc<Kernel>) -> PeerPolicy {
    let me = Arc::downgrade(kernel);
    PeerPolicy::new(
        kernel.cfg.verifier_public_key.clone(),
        [Level::L1, Level::L2, Level::L3],
    )
    .kernels(kernel.cfg.peers.iter().map(|(id, _)| id.clone()))
    .check(move |peer| {
        let k = me.upgrade().ok_or("kernel stopped")?;
        if peer.kernel_id() == k.cfg.kernel_id {
            return Err("the peer presents this kernel's own identity".into());
        }
        if k.peer_revoked(peer.kernel_id()) {
            return Err(format!("`{}` is revoked by the verifier", peer.kernel_id()));
        }
        Ok(())
    })
}

/// The check that refused a certificate in a failed handshake, when that is why it failed
/// (our appraisal of the peer's certificate), else `None`.
pub fn certificate_refusal(e: &std::io::Error) -> Option<String> {
    match e.get_ref()?.downcast_ref::<rustls::Error>()? {
        rustls::Error::InvalidCertificate(rustls::CertificateError::Other(o)) => {
            Some(o.0.to_string())
        }
        rustls::Error::InvalidCertificate(other) => Some(format!("{other:?}")),
        rustls::Error::NoCertificatesPresented => Some("no client certificate".into()),
        _ => None,
    }
}

/// Opens a mutually attested TLS session to the peer behind host `port`.
pub(crate) async fn dial(kernel: &Arc<Kernel>, port: u32) -> Result<Box<dyn Stream>, String> {
    let peer = kernel
        .cfg
        .peers
        .iter()
        .find(|(_, p)| *p == port)
        .map(|(id, _)| id.clone())
        .ok_or_else(|| format!("no peer is configured behind host port {port}"))?;
    let identity = identity(kernel);
    if identity.current().is_none() {
        return Err("this kernel has no attested identity to present (not attested)".into());
    }
    let config =
        attested_tls::client_config(peer_policy(kernel).kernels([peer.clone()]), Some(identity))
            .map_err(|e| format!("attested tls client: {e}"))?;
    let tls = connect_tls(
        &kernel.cfg.vsock,
        port,
        config,
        attested_tls::SERVER_NAME,
        &format!("attested tls to `{peer}`"),
    )
    .await?;
    tracing::debug!(kernel = %kernel.cfg.kernel_id, %peer, "attested tls session to a peer open");
    Ok(tls)
}

/// The evidence a re-attesting kernel presents to the verifier: its newest pair while the
/// result is still affirming (with a margin for the handshake). An expired result would be
/// refused in the handshake and cut the kernel off from the re-attestation that renews it,
/// so then the kernel connects anonymously and the verifier goes by the request's kernel id
/// (whose answers it checks under the AK all the same).
#[derive(Debug)]
struct FreshEvidence {
    inner: KernelEvidence,
    verifier_public_key: Vec<u8>,
}

/// How long before its expiry a result is no longer presented.
const PRESENT_MARGIN_MS: u64 = 2_000;

impl EvidenceSource for FreshEvidence {
    fn current(&self) -> Option<Evidence> {
        let ev = self.inner.current()?;
        let result =
            attestation::result::verify_result(&ev.result, &self.verifier_public_key).ok()?;
        result
            .is_affirming_at(attestation::now_ms().saturating_add(PRESENT_MARGIN_MS))
            .then_some(ev)
    }
}

/// Opens this kernel's TLS session to the verifier: the server must hold the pinned
/// result-signing key ([`attested_tls::pinned`]). With `kernel` (re-attestation), the
/// kernel presents its attested certificate while its result is fresh, and the verifier
/// then serves that session for this kernel only; at boot it has none to present.
pub(crate) async fn dial_verifier(
    cfg: &crate::config::KernelConfig,
    kernel: Option<&Arc<Kernel>>,
) -> Result<Box<dyn Stream>, String> {
    let identity = kernel.map(|k| {
        Arc::new(AttestedCertResolver::new(
            FreshEvidence {
                inner: KernelEvidence(Arc::downgrade(k)),
                verifier_public_key: k.cfg.verifier_public_key.clone(),
            },
            Arc::new(KernelAk::new(k)) as Arc<dyn AttestationSigner>,
        )) as Arc<dyn rustls::client::ResolvesClientCert>
    });
    let config = attested_tls::verifier_client_config(&cfg.verifier_public_key, identity)
        .map_err(|e| format!("verifier tls client: {e}"))?;
    connect_tls(
        &cfg.vsock,
        cfg.verifier_port,
        config,
        attested_tls::VERIFIER_SERVER_NAME,
        "tls to the verifier",
    )
    .await
}

/// Dials host `port` and runs the TLS client handshake of `config` for `server_name`;
/// errors start with `what` and name a refused certificate's reason.
async fn connect_tls(
    vsock: &crate::transport::Vsock,
    port: u32,
    config: rustls::ClientConfig,
    server_name: &'static str,
    what: &str,
) -> Result<Box<dyn Stream>, String> {
    let name = rustls::pki_types::ServerName::try_from(server_name).map_err(|e| e.to_string())?;
    let stream = vsock
        .dial(port)
        .await
        .map_err(|e| crate::boot::error_chain(&e))?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, stream)
        .await
        .map_err(|e| match certificate_refusal(&e) {
            Some(why) => format!("{what} refused its certificate: {why}"),
            None => format!("{what} failed: {e}"),
        })?;
    Ok(Box::new(tls))
}

/// The sender a peer method claims, or `None` for any other method.
fn claimed_sender(req: &Request) -> Option<(&PeerAuth, &str)> {
    match req {
        Request::FrostCommit(p) => Some((&p.peer, events::SIGNING)),
        Request::FrostSign(p) => Some((&p.peer, events::SIGNING)),
        Request::DkgRound1(p) => Some((&p.peer, events::DKG)),
        Request::DkgRound2(p) => Some((&p.peer, events::DKG)),
        Request::PeerHello(p) => Some((&p.peer, events::PEER_ATTESTATION_FAILED)),
        Request::PeerCommit(p) => Some((&p.peer, events::PEER_ATTESTATION_FAILED)),
        Request::PeerDone(p) => Some((&p.peer, events::PEER_ATTESTATION_FAILED)),
        _ => None,
    }
}

/// Whether a peer method claiming `claimed` may be served to `tls_peer` (the appraised TLS
/// client identity; `None` for plaintext or an anonymous TLS client).
pub fn admit(
    tls_peer: Option<&AttestedPeer>,
    method: &str,
    claimed: &PeerAuth,
) -> Result<(), String> {
    let Some(peer) = tls_peer else {
        return Err(format!(
            "`{method}` is served only over mutually attested tls; refused without an attested client certificate"
        ));
    };
    if peer.kernel_id() != claimed.kernel_id {
        return Err(format!(
            "tls peer is `{}` but the request claims to come from `{}`",
            peer.kernel_id(),
            claimed.kernel_id
        ));
    }
    if peer.public_key() != claimed.ak_public.as_slice() {
        return Err("the request's attestation key is not the tls peer's".into());
    }
    Ok(())
}

/// Answers one request that arrived in plaintext (`tls_peer` = `None`) or over TLS from
/// `tls_peer`: peer methods must pass [`admit`] first; a refusal is audited with its reason.
pub async fn handle(
    kernel: &Arc<Kernel>,
    req: Request,
    tls_peer: Option<&AttestedPeer>,
) -> Response {
    if let Some((claimed, kind)) = claimed_sender(&req) {
        let method = req.method();
        if let Err(reason) = admit(tls_peer, method, claimed) {
            tracing::warn!(kernel = %kernel.cfg.kernel_id, peer = %claimed.kernel_id, %reason, "{method} refused");
            kernel
                .audit_event(
                    kind,
                    method,
                    &("refused", method, &claimed.kernel_id, &reason),
                )
                .await;
            return Response::error(ErrorCode::Unauthorized, reason);
        }
    }
    kernel.handle(req).await
}
