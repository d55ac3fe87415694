//! The kernel's configuration: who it is, where its state lives, how it reaches the verifier
//! and its peers, and which platform attests it.

use crate::transport::Vsock;
use std::path::PathBuf;

/// Which platform attester establishes the kernel's level. Chosen explicitly; a missing TEE
/// is an error, never a silent fallback to software.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    /// KEE1-L1 software platform (development).
    Software,
    /// AMD SEV-SNP via `/dev/sev-guest`.
    SevSnp,
    /// Intel TDX via configfs-tsm.
    Tdx,
}

impl std::str::FromStr for Platform {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "software" => Ok(Platform::Software),
            "sev-snp" => Ok(Platform::SevSnp),
            "tdx" => Ok(Platform::Tdx),
            other => Err(format!(
                "unknown platform `{other}` (software, sev-snp, tdx)"
            )),
        }
    }
}

/// Retry with exponential backoff while the verifier is unreachable.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    /// First delay.
    pub initial_ms: u64,
    /// Largest delay.
    pub max_ms: u64,
    /// Attempts before giving up (0 = never give up).
    pub max_attempts: u32,
    /// Longest wait, at boot, for the verifier link to open or for one answer on it. Past
    /// it the attempt counts as "verifier unreachable" and is retried: a verifier (or a
    /// host) that accepts and then says nothing cannot hold a kernel in `booting`.
    pub exchange_timeout_ms: u64,
}

impl Default for Retry {
    fn default() -> Self {
        Self {
            initial_ms: 200,
            max_ms: 5_000,
            max_attempts: 0,
            exchange_timeout_ms: 30_000,
        }
    }
}

/// Everything a kernel needs to boot.
#[derive(Debug, Clone)]
pub struct KernelConfig {
    /// Kernel id (must match the ceremony).
    pub kernel_id: String,
    /// Fleet id written into the manifest.
    pub fleet_id: String,
    /// State directory: `sealed_share.cbor` (from the ceremony) and `audit.db`.
    pub state_dir: PathBuf,
    /// vsock (hybrid Unix socket in development).
    pub vsock: Vsock,
    /// Host port that leads to the verifier.
    pub verifier_port: u32,
    /// Peer kernels: id and the host port that leads to each one's public proxy.
    pub peers: Vec<(String, u32)>,
    /// The verifier's result-signing public key (Ed25519, pinned).
    pub verifier_public_key: Vec<u8>,
    /// Cedar policy file; `None` or unreadable = deny everything.
    pub cedar_policy: Option<PathBuf>,
    /// Platform attester.
    pub platform: Platform,
    /// TCTI of the vTPM (e.g. `swtpm:host=127.0.0.1,port=2321`), if any.
    pub tpm_tcti: Option<String>,
    /// The TCG2 event log of the PCRs the vTPM quotes (in a guest
    /// `attestation::tpm::EVENT_LOG_PATH`), shipped with every quote: whole at boot, only
    /// the new events at each re-attestation. `None`: no log.
    pub event_log: Option<PathBuf>,
    /// Backoff while the verifier is unreachable.
    pub retry: Retry,
    /// Timeout of one peer call during signing.
    pub peer_timeout_ms: u64,
    /// Catalog publishers (Ed25519 public keys) whose signatures may change the Cedar policy
    /// set (KEE-1 P4); pinned in the manifest. Empty: catalog updates are refused.
    pub catalog_publishers: Vec<[u8; 32]>,
    /// How many distinct publishers must sign a catalog update (2 of 3 by default).
    pub catalog_threshold: usize,
    /// Collect NVIDIA GPU evidence (NVML; the `gpu` build feature) into every bundle. When
    /// NVML is absent or CC mode is off the bundle says "no gpu evidence" and policy decides.
    pub gpus: bool,
    /// Host vsock port whose proxy route (`carry = "http"`) leads to an OpenTelemetry
    /// collector: `soos.governance.*` spans are exported there over OTLP/HTTP. `None`: spans
    /// are made but not exported.
    pub otlp_port: Option<u32>,
}
