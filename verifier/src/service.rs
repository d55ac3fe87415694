//! The verifier's network service: one connection carries one appraisal
//! (`nonce` → `appraise` → `release_key`), framed with the `wire` crate.

use crate::store::{NonceUse, Store, StoreError};
use attestation::appraisal::{appraise, AppraisalContext, AppraisalPolicy};
use attestation::bundle::UnverifiedBundle;
use attestation::result::{AttestationResult, ResultSigner, Tier, EAR_PROFILE};
use attestation::sealing;
use ring::rand::SecureRandom;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use wire::verifier::{VerifierRequest, VerifierResponse};

/// Most requests one connection may make (nonce, appraise, release and slack).
pub const MAX_REQUESTS_PER_CONNECTION: usize = 8;
/// A connection idle this long is closed.
pub const IDLE_TIMEOUT_MS: u64 = 30_000;
/// Identity written into every result.
pub const VERIFIER_ID: &str = concat!("enclave-verifier/", env!("CARGO_PKG_VERSION"));

/// Errors starting the service.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// "could not listen on `{0}`".
    #[error("could not listen on `{addr}`")]
    Listen {
        /// Address.
        addr: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// "could not create or load the result-signing key".
    #[error("could not create or load the result-signing key")]
    Key,
    /// State store failure.
    #[error("verifier state")]
    Store(#[from] StoreError),
}

/// What the service needs.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// TCP address to listen on (port 0 picks one).
    pub listen: SocketAddr,
    /// Appraisal policy.
    pub policy: AppraisalPolicy,
}

/// A running service.
#[derive(Debug)]
pub struct ServiceHandle {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The result-signing public key (Ed25519).
    pub public_key: Vec<u8>,
    task: tokio::task::JoinHandle<()>,
}

impl ServiceHandle {
    /// Stops accepting connections.
    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for ServiceHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Shared {
    store: Arc<Store>,
    policy: AppraisalPolicy,
    signer: ResultSigner,
}

/// Loads (or creates) the result-signing key from `store`.
pub fn load_signer(store: &Store) -> Result<ResultSigner, ServiceError> {
    let pkcs8 = store
        .signing_key(|| ResultSigner::generate().ok().map(|(_, p)| p))?
        .ok_or(ServiceError::Key)?;
    ResultSigner::from_pkcs8(&pkcs8).map_err(|_| ServiceError::Key)
}

/// Binds and starts serving in the background.
pub async fn serve(
    config: ServiceConfig,
    store: Arc<Store>,
) -> Result<ServiceHandle, ServiceError> {
    let signer = load_signer(&store)?;
    let public_key = signer.public_key().to_vec();
    let listener =
        TcpListener::bind(config.listen)
            .await
            .map_err(|source| ServiceError::Listen {
                addr: config.listen.to_string(),
                source,
            })?;
    let addr = listener
        .local_addr()
        .map_err(|source| ServiceError::Listen {
            addr: config.listen.to_string(),
            source,
        })?;
    let shared = Arc::new(Shared {
        store,
        policy: config.policy,
        signer,
    });
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let shared = shared.clone();
            tokio::spawn(async move {
                if let Err(e) = connection(stream, shared).await {
                    tracing::debug!(%peer, error = %e, "verifier connection ended");
                }
            });
        }
    });
    Ok(ServiceHandle {
        addr,
        public_key,
        task,
    })
}

/// What this connection has proven.
#[derive(Default)]
struct ConnState {
    affirmed: Option<Affirmed>,
}

struct Affirmed {
    kernel_id: String,
    key_exchange_public: Vec<u8>,
    bundle_digest: Vec<u8>,
}

async fn connection(mut stream: TcpStream, shared: Arc<Shared>) -> Result<(), wire::FrameError> {
    let mut state = ConnState::default();
    for _ in 0..MAX_REQUESTS_PER_CONNECTION {
        let frame = match tokio::time::timeout(
            Duration::from_millis(IDLE_TIMEOUT_MS),
            wire::read_frame(&mut stream),
        )
        .await
        {
            Ok(Ok(f)) => f,
            Ok(Err(e)) => return Err(e),
            Err(_) => return Ok(()),
        };
        let response = match wire::decode::<VerifierRequest>(&frame) {
            Ok(req) => handle(req, &shared, &mut state),
            Err(e) => refused(format!("request rejected: {e}")),
        };
        let bytes = match wire::encode(&response) {
            Ok(b) => b,
            Err(_) => return Ok(()),
        };
        wire::write_frame(&mut stream, &bytes).await?;
    }
    Ok(())
}

fn refused(reason: impl Into<String>) -> VerifierResponse {
    let reason = reason.into();
    tracing::info!(%reason, "verifier refused a request");
    VerifierResponse::Refused { reason }
}

fn handle(req: VerifierRequest, shared: &Shared, state: &mut ConnState) -> VerifierResponse {
    match req {
        VerifierRequest::Nonce { kernel_id } => issue_nonce(&kernel_id, shared),
        VerifierRequest::Appraise { bundle } => appraise_bundle(&bundle, shared, state),
        VerifierRequest::ReleaseKey { kernel_id } => release(&kernel_id, shared, state),
    }
}

fn issue_nonce(kernel_id: &str, shared: &Shared) -> VerifierResponse {
    match shared.store.is_registered(kernel_id) {
        Ok(true) => {}
        Ok(false) => return refused(format!("kernel `{kernel_id}` is not registered")),
        Err(e) => return refused(format!("verifier state unavailable: {e}")),
    }
    let mut nonce = [0u8; 32];
    if ring::rand::SystemRandom::new().fill(&mut nonce).is_err() {
        return refused("random number generator failed");
    }
    let now = attestation::now_ms();
    let expires = now.saturating_add(shared.policy.nonce_ttl_ms);
    match shared.store.issue_nonce(&nonce, kernel_id, now, expires) {
        Ok(()) => VerifierResponse::Nonce {
            nonce: nonce.to_vec(),
            expires_at_ms: expires,
        },
        Err(e) => refused(format!("verifier state unavailable: {e}")),
    }
}

fn appraise_bundle(bytes: &[u8], shared: &Shared, state: &mut ConnState) -> VerifierResponse {
    state.affirmed = None;
    let bundle = match UnverifiedBundle::parse(bytes).and_then(|b| b.verify_signature()) {
        Ok(b) => b,
        Err(e) => return refused(format!("bundle rejected: {e}")),
    };
    let kernel_id = bundle.kernel_id().to_string();
    match shared.store.is_registered(&kernel_id) {
        Ok(true) => {}
        Ok(false) => return refused(format!("kernel `{kernel_id}` is not registered")),
        Err(e) => return refused(format!("verifier state unavailable: {e}")),
    }
    let now = attestation::now_ms();
    let use_ = match shared
        .store
        .use_nonce(bundle.nonce().as_bytes(), &kernel_id, now)
    {
        Ok(u) => u,
        Err(e) => return refused(format!("verifier state unavailable: {e}")),
    };
    let nonce_problem = match use_ {
        NonceUse::Fresh => None,
        NonceUse::Unknown => Some("nonce was never issued by this verifier"),
        NonceUse::Replayed => Some("nonce was already used (replay)"),
        NonceUse::Expired => Some("nonce expired before the bundle arrived"),
        NonceUse::WrongKernel => Some("nonce was issued to another kernel"),
    };
    if let Some(p) = nonce_problem {
        let reasons = vec![p.to_string()];
        let _ = shared.store.record_result(
            &kernel_id,
            now,
            now,
            Tier::Contraindicated.as_str(),
            bundle.digest(),
            &[],
            &reasons,
        );
        return refused(format!("bundle rejected: {p}"));
    }
    let ctx = AppraisalContext {
        policy: &shared.policy,
        expected_nonce: bundle.nonce(),
        now_ms: now,
    };
    let appraisal = appraise(&bundle, &ctx);
    let reasons = appraisal.reasons();
    let result = AttestationResult {
        eat_profile: EAR_PROFILE.to_string(),
        issued_at_ms: now,
        expires_at_ms: now.saturating_add(shared.policy.result_ttl_ms),
        verifier_id: VERIFIER_ID.to_string(),
        policy_id: shared.policy.policy_id.clone(),
        kernel_id: kernel_id.clone(),
        level: appraisal.level,
        status: appraisal.status,
        trust_vector: appraisal.claims.clone(),
        nonce: bundle.nonce().as_bytes().to_vec(),
        bundle_digest: bundle.digest().to_vec(),
        ak_public_digest: attestation::sha256(bundle.ak_public()).to_vec(),
        reference_digest: shared.policy.reference_digest().to_vec(),
    };
    let signed = match shared.signer.sign(&result) {
        Ok(s) => s,
        Err(e) => return refused(format!("could not sign the result: {e}")),
    };
    if let Err(e) = shared.store.record_result(
        &kernel_id,
        now,
        result.expires_at_ms,
        appraisal.status.as_str(),
        bundle.digest(),
        &signed,
        &reasons,
    ) {
        return refused(format!("verifier state unavailable: {e}"));
    }
    tracing::info!(kernel = %kernel_id, status = appraisal.status.as_str(), "appraised");
    if appraisal.status == Tier::Affirming {
        state.affirmed = Some(Affirmed {
            kernel_id,
            key_exchange_public: bundle.key_exchange_public().to_vec(),
            bundle_digest: bundle.digest().to_vec(),
        });
    }
    VerifierResponse::Appraised {
        result: signed,
        status: appraisal.status.as_str().to_string(),
        reasons,
    }
}

fn release(kernel_id: &str, shared: &Shared, state: &mut ConnState) -> VerifierResponse {
    // Single use: whatever happens below, this connection's appraisal is spent.
    let Some(aff) = state.affirmed.take() else {
        return refused("no affirming appraisal on this connection");
    };
    if aff.kernel_id != kernel_id {
        return refused(format!(
            "this connection's appraisal is for `{}`, not `{kernel_id}`",
            aff.kernel_id
        ));
    }
    let now = attestation::now_ms();
    match shared.store.latest_result(kernel_id) {
        Ok(Some((status, expires, digest)))
            if status == Tier::Affirming.as_str()
                && now <= expires
                && digest == aff.bundle_digest => {}
        Ok(_) => return refused("the kernel's latest result is not this affirming appraisal"),
        Err(e) => return refused(format!("verifier state unavailable: {e}")),
    }
    let record = match shared.store.wrap_key(kernel_id) {
        Ok(Some(r)) => r,
        Ok(None) => return refused(format!("no wrap key for `{kernel_id}`")),
        Err(e) => return refused(format!("verifier state unavailable: {e}")),
    };
    if record.reference_digest != shared.policy.reference_digest() {
        return refused("the share was sealed under other reference values; run a new ceremony");
    }
    let aad = sealing::release_aad(kernel_id, &aff.bundle_digest);
    match sealing::seal_to(&aff.key_exchange_public, &aad, &record.wrap_key) {
        Ok((ephemeral_public, sealed_wrap_key)) => {
            tracing::info!(kernel = %kernel_id, "wrap key released");
            VerifierResponse::KeyReleased {
                ephemeral_public,
                sealed_wrap_key,
                reference_digest: record.reference_digest,
            }
        }
        Err(e) => refused(format!("could not seal the wrap key: {e}")),
    }
}
