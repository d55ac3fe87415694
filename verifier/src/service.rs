//! The verifier's network service, framed with the `wire` crate. A boot connection carries
//! one appraisal (`nonce` → `appraise` → `release_key`); a `watch` connection carries a
//! kernel's continuous attestation (held `watch` answers, and `appraise` for each challenge
//! they carry), served by the [`Monitor`].

use crate::monitor::{Monitor, MonitorConfig, MonitorError, WatchSession};
use crate::store::{NonceUse, Store, StoreError};
use attestation::appraisal::{appraise, AppraisalContext, AppraisalPolicy, EventLogBase};
use attestation::bundle::UnverifiedBundle;
use attestation::result::{claim, AttestationResult, ResultSigner, Tier, TrustClaim, EAR_PROFILE};
use attestation::sealing;
use ring::rand::SecureRandom;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use wire::verifier::{VerifierRequest, VerifierResponse};

/// Most requests one boot connection may make (nonce, appraise, release and slack). A
/// `watch` connection has no count limit: each `watch` is held, and it may `appraise` only
/// as many bundles as it was sent challenges.
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
    /// "could not set up tls on the result-signing key: {0}".
    #[error("could not set up tls on the result-signing key: {0}")]
    Tls(String),
    /// State store failure.
    #[error("verifier state")]
    Store(#[from] StoreError),
    /// The re-attestation monitor could not start.
    #[error("re-attestation monitor")]
    Monitor(#[from] MonitorError),
}

/// What the service needs.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// TCP address to listen on (port 0 picks one).
    pub listen: SocketAddr,
    /// Appraisal policy.
    pub policy: AppraisalPolicy,
    /// Refuse connections that do not open with a TLS handshake. Kernels always speak TLS
    /// to the verifier (pinning its result key); plaintext frames are for tools on a
    /// trusted host, and `require_tls` shuts them out.
    pub require_tls: bool,
}

/// A running service.
#[derive(Debug)]
pub struct ServiceHandle {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The result-signing public key (Ed25519).
    pub public_key: Vec<u8>,
    /// The re-attestation monitor (registry view, metrics).
    pub monitor: Arc<Monitor>,
    links: Arc<LinkCounters>,
    task: tokio::task::JoinHandle<()>,
    shutdown: tokio::sync::watch::Sender<bool>,
    _checkpointer: crate::store::Checkpointer,
}

/// How connections reached the service, counted since it started.
#[derive(Debug, Default)]
struct LinkCounters {
    plaintext: std::sync::atomic::AtomicU64,
    plaintext_refused: std::sync::atomic::AtomicU64,
    tls_anonymous: std::sync::atomic::AtomicU64,
    tls_attested: std::sync::atomic::AtomicU64,
    tls_failed: std::sync::atomic::AtomicU64,
}

/// [`ServiceHandle::links`]: how connections reached the service since it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct LinkCounts {
    /// Plaintext frame connections served.
    pub plaintext: u64,
    /// Plaintext connections refused (the service requires TLS).
    pub plaintext_refused: u64,
    /// TLS sessions without a client certificate (kernels at boot, tools).
    pub tls_anonymous: u64,
    /// TLS sessions whose client certificate appraised (re-attesting kernels).
    pub tls_attested: u64,
    /// TLS handshakes that failed or timed out (a refused client certificate included).
    pub tls_failed: u64,
}

impl ServiceHandle {
    /// How connections reached the service since it started.
    pub fn links(&self) -> LinkCounts {
        use std::sync::atomic::Ordering::Relaxed;
        let l = &self.links;
        LinkCounts {
            plaintext: l.plaintext.load(Relaxed),
            plaintext_refused: l.plaintext_refused.load(Relaxed),
            tls_anonymous: l.tls_anonymous.load(Relaxed),
            tls_attested: l.tls_attested.load(Relaxed),
            tls_failed: l.tls_failed.load(Relaxed),
        }
    }

    /// Stops the service: no new connections, every open connection (held `watch`es
    /// included) closed, the sweeper stopped.
    pub fn stop(&self) {
        let _ = self.shutdown.send(true);
        self.task.abort();
    }
}

impl Drop for ServiceHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

struct Shared {
    store: Arc<Store>,
    tls: tokio_rustls::TlsAcceptor,
    /// Who may present an attested client certificate (kernels this verifier affirmed).
    kernels: attested_tls::PeerPolicy,
    require_tls: bool,
    links: Arc<LinkCounters>,
    policy: AppraisalPolicy,
    signer: ResultSigner,
    monitor: Arc<Monitor>,
}

fn signing_pkcs8(store: &Store) -> Result<Vec<u8>, ServiceError> {
    store
        .signing_key(|| ResultSigner::generate().ok().map(|(_, p)| p))?
        .ok_or(ServiceError::Key)
}

/// Loads (or creates) the result-signing key from `store`.
pub fn load_signer(store: &Store) -> Result<ResultSigner, ServiceError> {
    ResultSigner::from_pkcs8(&signing_pkcs8(store)?).map_err(|_| ServiceError::Key)
}

/// Binds and starts serving in the background, re-attesting with the default settings.
pub async fn serve(
    config: ServiceConfig,
    store: Arc<Store>,
) -> Result<ServiceHandle, ServiceError> {
    serve_with(config, MonitorConfig::default(), store).await
}

/// Binds and starts serving in the background with these re-attestation settings.
pub async fn serve_with(
    config: ServiceConfig,
    monitor: MonitorConfig,
    store: Arc<Store>,
) -> Result<ServiceHandle, ServiceError> {
    let pkcs8 = signing_pkcs8(&store)?;
    let signer = ResultSigner::from_pkcs8(&pkcs8).map_err(|_| ServiceError::Key)?;
    // The feed is signed with the same key as results (the key kernels pin), under its own
    // domain-separation context.
    let feed_key =
        ring::signature::Ed25519KeyPair::from_pkcs8(&pkcs8).map_err(|_| ServiceError::Key)?;
    let public_key = signer.public_key().to_vec();
    // Kernels re-attesting present their attested certificate: a result this verifier
    // signed, at any level, about the bundle and the AK in the certificate.
    let kernels = attested_tls::PeerPolicy::new(
        public_key.clone(),
        [
            attestation::Level::L1,
            attestation::Level::L2,
            attestation::Level::L3,
        ],
    );
    let tls = attested_tls::verifier_server_config(
        &pkcs8,
        attested_tls::ClientAuth::Optional(kernels.clone()),
    )
    .map_err(|e| ServiceError::Tls(e.to_string()))?;
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
    let monitor = Monitor::start(
        monitor,
        config.policy.policy_id.clone(),
        store.clone(),
        feed_key,
    )?;
    let checkpointer = store.start_checkpointer()?;
    let (shutdown, shutdown_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(monitor.clone().run_sweeper(shutdown_rx.clone()));
    let links = Arc::new(LinkCounters::default());
    let shared = Arc::new(Shared {
        store,
        tls: tokio_rustls::TlsAcceptor::from(Arc::new(tls)),
        kernels,
        require_tls: config.require_tls,
        links: links.clone(),
        policy: config.policy,
        signer,
        monitor: monitor.clone(),
    });
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let shared = shared.clone();
            let mut stop = shutdown_rx.clone();
            tokio::spawn(async move {
                tokio::select! {
                    r = accept(stream, shared) => {
                        if let Err(e) = r {
                            tracing::debug!(%peer, error = %e, "verifier connection ended");
                        }
                    }
                    _ = stop.wait_for(|s| *s) => {}
                }
            });
        }
    });
    Ok(ServiceHandle {
        addr,
        public_key,
        monitor,
        links,
        task,
        shutdown,
        _checkpointer: checkpointer,
    })
}

/// The first byte of a TLS record carrying a handshake message. A frame's first byte is the
/// top byte of its big-endian length, and no frame is 0x16000000 bytes long
/// ([`wire::MAX_FRAME_BYTES`]), so the two cannot be confused.
const TLS_HANDSHAKE: u8 = 0x16;
/// A TLS handshake that takes longer than this is abandoned.
pub const HANDSHAKE_TIMEOUT_MS: u64 = 10_000;

/// Starts a connection: a TLS session when it opens with a handshake (the kernels' way),
/// else plaintext frames unless the service requires TLS.
async fn accept(stream: TcpStream, shared: Arc<Shared>) -> Result<(), wire::FrameError> {
    let mut first = [0u8; 1];
    let peeked = tokio::time::timeout(
        Duration::from_millis(IDLE_TIMEOUT_MS),
        stream.peek(&mut first),
    )
    .await;
    match peeked {
        Ok(Ok(1..)) => {}
        Ok(Err(e)) => return Err(wire::FrameError::Io(e)),
        Ok(Ok(0)) | Err(_) => return Ok(()),
    }
    use std::sync::atomic::Ordering::Relaxed;
    let links = &shared.links;
    if first != [TLS_HANDSHAKE] {
        if shared.require_tls {
            links.plaintext_refused.fetch_add(1, Relaxed);
            tracing::info!("verifier refused a plaintext connection (tls required)");
            return Ok(());
        }
        links.plaintext.fetch_add(1, Relaxed);
        return connection(stream, shared, None).await;
    }
    let handshake = tokio::time::timeout(
        Duration::from_millis(HANDSHAKE_TIMEOUT_MS),
        shared.tls.accept(stream),
    )
    .await;
    let tls = match handshake {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            links.tls_failed.fetch_add(1, Relaxed);
            tracing::info!(error = %e, "verifier tls handshake failed");
            return Ok(());
        }
        Err(_) => {
            links.tls_failed.fetch_add(1, Relaxed);
            return Ok(());
        }
    };
    // The handshake appraised any client certificate already; this names who it proved.
    let proven = match tls.get_ref().1.peer_certificates() {
        None => None,
        Some(certs) => match attested_tls::verify::peer_of(Some(certs), &shared.kernels) {
            Ok(peer) => Some(peer.kernel_id().to_string()),
            Err(e) => {
                links.tls_failed.fetch_add(1, Relaxed);
                tracing::info!(error = %e, "verifier tls client refused");
                return Ok(());
            }
        },
    };
    if proven.is_some() {
        links.tls_attested.fetch_add(1, Relaxed);
    } else {
        links.tls_anonymous.fetch_add(1, Relaxed);
    }
    connection(tls, shared, proven).await
}

/// What this connection has proven.
struct ConnState {
    /// The kernel an attested TLS client certificate proved; such a session acts for that
    /// kernel only.
    tls_kernel: Option<String>,
    affirmed: Option<Affirmed>,
    watch: SessionGuard,
    /// Challenges delivered on this `watch` connection and not yet answered.
    challenges: u32,
}

/// The connection's `watch` session; tells the monitor when the connection closes.
struct SessionGuard {
    monitor: Arc<Monitor>,
    session: WatchSession,
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.monitor.session_closed(&self.session);
    }
}

struct Affirmed {
    kernel_id: String,
    key_exchange_public: Vec<u8>,
    bundle_digest: Vec<u8>,
    appraised_at_ms: u64,
    ak_public: Vec<u8>,
    level: String,
}

async fn connection<S>(
    mut stream: S,
    shared: Arc<Shared>,
    tls_kernel: Option<String>,
) -> Result<(), wire::FrameError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut state = ConnState {
        tls_kernel,
        affirmed: None,
        watch: SessionGuard {
            monitor: shared.monitor.clone(),
            session: WatchSession::default(),
        },
        challenges: 0,
    };
    let mut budget = MAX_REQUESTS_PER_CONNECTION;
    loop {
        if state.watch.session.kernel_id().is_none() {
            if budget == 0 {
                return Ok(());
            }
            budget -= 1;
        }
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
            Ok(req) => handle(req, &shared, &mut state).await,
            Err(e) => refused(format!("request rejected: {e}")),
        };
        let bytes = match wire::encode(&response) {
            Ok(b) => b,
            Err(_) => return Ok(()),
        };
        wire::write_frame(&mut stream, &bytes).await?;
    }
}

fn refused(reason: impl Into<String>) -> VerifierResponse {
    let reason = reason.into();
    tracing::info!(%reason, "verifier refused a request");
    VerifierResponse::Refused { reason }
}

async fn handle(req: VerifierRequest, shared: &Shared, state: &mut ConnState) -> VerifierResponse {
    if let Some(proven) = &state.tls_kernel {
        let claimed = match &req {
            VerifierRequest::Watch(p) => Some(p.kernel_id.as_str()),
            VerifierRequest::Nonce { kernel_id } | VerifierRequest::ReleaseKey { kernel_id } => {
                Some(kernel_id.as_str())
            }
            VerifierRequest::Appraise { .. } => None,
        };
        if let Some(claimed) = claimed.filter(|c| c != proven) {
            return refused(format!(
                "this tls session is attested as kernel `{proven}`, not `{claimed}`"
            ));
        }
    }
    let watching = state.watch.session.kernel_id().map(str::to_string);
    match (req, watching) {
        (VerifierRequest::Watch(p), _) => {
            if state.affirmed.is_some() {
                return refused("a boot connection cannot watch; open another connection");
            }
            let resp = shared.monitor.watch(&mut state.watch.session, p).await;
            if let VerifierResponse::Status { status, .. } = &resp {
                let challenged = wire::decode::<wire::verifier::FeedStatus>(status)
                    .map(|s| s.challenge.is_some())
                    .unwrap_or(false);
                if challenged {
                    state.challenges = 1;
                }
            }
            resp
        }
        (VerifierRequest::Appraise { bundle }, Some(watched)) => {
            if state.challenges == 0 {
                return refused("no challenge to answer on this watch connection");
            }
            state.challenges = 0;
            appraise_bundle(&bundle, shared, state, Some(&watched))
        }
        (_, Some(_)) => refused("only `watch` and `appraise` are served on a watch connection"),
        (VerifierRequest::Nonce { kernel_id }, None) => issue_nonce(&kernel_id, shared),
        (VerifierRequest::Appraise { bundle }, None) => {
            appraise_bundle(&bundle, shared, state, None)
        }
        (VerifierRequest::ReleaseKey { kernel_id }, None) => release(&kernel_id, shared, state),
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

fn appraise_bundle(
    bytes: &[u8],
    shared: &Shared,
    state: &mut ConnState,
    watched: Option<&str>,
) -> VerifierResponse {
    state.affirmed = None;
    let bundle = match UnverifiedBundle::parse(bytes).and_then(|b| b.verify_signature()) {
        Ok(b) => b,
        Err(e) => return refused(format!("bundle rejected: {e}")),
    };
    let kernel_id = bundle.kernel_id().to_string();
    if watched.is_some_and(|w| w != kernel_id) {
        return refused(format!(
            "this watch connection is for `{}`, not `{kernel_id}`",
            watched.unwrap_or_default()
        ));
    }
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
        shared.monitor.refusal("nonce");
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
    // The event-log replay of this boot (same attestation key), if this verifier holds one.
    let ak_digest = attestation::sha256(bundle.ak_public());
    let log_state = match shared.store.event_log_state(&kernel_id, &ak_digest) {
        Ok(s) => s,
        Err(e) => return refused(format!("verifier state unavailable: {e}")),
    };
    let ctx = AppraisalContext {
        policy: &shared.policy,
        expected_nonce: bundle.nonce(),
        now_ms: now,
        event_log_base: log_state
            .as_ref()
            .map_or(EventLogBase::Start, EventLogBase::Replayed),
    };
    let mut appraisal = appraise(&bundle, &ctx);
    // A challenge must be answered by the instance the wrap key was released to.
    let challenge = shared
        .monitor
        .challenge_match(&kernel_id, bundle.nonce().as_bytes());
    if challenge.challenge
        && challenge.pinned_ak_digest != Some(attestation::sha256(bundle.ak_public()))
    {
        appraisal.claims.push(TrustClaim {
            claim: claim::INSTANCE_IDENTITY.to_string(),
            tier: Tier::Contraindicated,
            reason: "challenge answered with another attestation key than the one the wrap key was released to".into(),
        });
        appraisal.status = AttestationResult::overall(&appraisal.claims);
        shared.monitor.refusal("attestation-key");
    }
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
    if let (Tier::Affirming, Some(state)) = (appraisal.status, &appraisal.event_log) {
        if let Err(e) = shared
            .store
            .put_event_log_state(&kernel_id, &ak_digest, state)
        {
            return refused(format!("verifier state unavailable: {e}"));
        }
    }
    shared.monitor.appraised(
        &kernel_id,
        challenge.challenge,
        appraisal.status,
        &appraisal.claims,
        &reasons,
        appraisal.level.as_str(),
    );
    if challenge.challenge {
        tracing::debug!(kernel = %kernel_id, status = appraisal.status.as_str(), "challenge appraised");
    } else {
        tracing::info!(kernel = %kernel_id, status = appraisal.status.as_str(), "appraised");
    }
    if appraisal.status == Tier::Affirming && watched.is_none() {
        state.affirmed = Some(Affirmed {
            kernel_id,
            key_exchange_public: bundle.key_exchange_public().to_vec(),
            bundle_digest: bundle.digest().to_vec(),
            appraised_at_ms: now,
            ak_public: bundle.ak_public().to_vec(),
            level: appraisal.level.as_str().to_string(),
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
    if let Err(why) = shared
        .monitor
        .release_allowed(kernel_id, aff.appraised_at_ms)
    {
        return refused(why);
    }
    let aad = sealing::release_aad(kernel_id, &aff.bundle_digest);
    match sealing::seal_to(&aff.key_exchange_public, &aad, &record.wrap_key) {
        Ok((ephemeral_public, sealed_wrap_key)) => {
            shared
                .monitor
                .released(kernel_id, &aff.ak_public, &aff.level);
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
