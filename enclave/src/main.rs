//! `enclave`: the governance kernel binary. In a CVM it is PID 1 of the image; in development
//! it runs as a plain process on the software platform (KEE1-L1) with a hybrid-vsock socket.

use anyhow::Context;
use clap::Parser;
use enclave::pid1;
use enclave::transport::Vsock;
use enclave::{Kernel, KernelConfig, Platform, Retry};
use std::path::PathBuf;

/// Boot a governance kernel: attest, get appraised, unseal, serve.
///
/// Exit codes: 0 after a clean shutdown (SIGINT/SIGTERM), 1 when the kernel cannot start,
/// 2 usage error.
/// A kernel that is refused by the verifier keeps running and serves only `health`, which
/// says why.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// Kernel id (as registered by the ceremony).
    #[arg(long)]
    kernel_id: String,
    /// Fleet id for the manifest.
    #[arg(long, default_value = "dev-fleet")]
    fleet_id: String,
    /// State directory (sealed_share.cbor from the ceremony; audit.db is created here).
    #[arg(long)]
    state_dir: PathBuf,
    /// Hybrid-vsock Unix socket (development). Without it, AF_VSOCK is used.
    #[arg(long)]
    vsock_uds: Option<PathBuf>,
    /// Host vsock port leading to the verifier.
    #[arg(long, default_value_t = wire::hybrid::VERIFIER_PORT)]
    verifier_port: u32,
    /// Peer kernel reachable at a host vsock port: `ID=PORT` (repeat).
    #[arg(long = "peer")]
    peers: Vec<String>,
    /// The verifier's result-signing public key (hex), or a file holding it.
    #[arg(long)]
    verifier_public_key: String,
    /// Cedar policy set file (missing or invalid = deny everything).
    #[arg(long)]
    cedar_policy: Option<PathBuf>,
    /// Platform attester: software (KEE1-L1), sev-snp, tdx.
    #[arg(long, default_value = "software")]
    platform: Platform,
    /// vTPM TCTI, e.g. `swtpm:host=127.0.0.1,port=2321`.
    #[arg(long)]
    tpm_tcti: Option<String>,
    /// TCG2 event log shipped with every vTPM quote (in a guest:
    /// /sys/kernel/security/tpm0/binary_bios_measurements).
    #[arg(long, requires = "tpm_tcti")]
    event_log: Option<PathBuf>,
    /// A catalog publisher's Ed25519 public key (hex; repeat): a threshold of them must sign
    /// any change of the Cedar policy set. Pinned in the manifest.
    #[arg(long = "catalog-publisher", value_name = "HEX")]
    catalog_publishers: Vec<String>,
    /// How many distinct publishers must sign a catalog update.
    #[arg(long, default_value_t = 2)]
    catalog_threshold: usize,
    /// Collect NVIDIA GPU evidence (NVML, `gpu` build feature) into every bundle.
    #[arg(long)]
    gpus: bool,
    /// Host vsock port leading (through the proxy's `carry = "http"` egress route) to an
    /// OpenTelemetry collector; `soos.governance.*` spans are exported there over OTLP/HTTP
    /// (conventionally 5300). Without it spans are made but not exported.
    #[arg(long, value_name = "PORT")]
    otlp_port: Option<u32>,
    /// Give up after this many attempts while the verifier is unreachable (0 = never).
    #[arg(long, default_value_t = 0)]
    max_attempts: u32,
    /// Timeout of one peer call during signing (ms).
    #[arg(long, default_value_t = 3_000)]
    peer_timeout_ms: u64,
    /// Audit anchor interval (ms, at most 60000): every open session block closes and is
    /// threshold-signed this often.
    #[arg(long, default_value_t = 10_000)]
    anchor_interval_ms: u64,
    /// Most ALEs in one session block.
    #[arg(long, default_value_t = 1_024)]
    max_block_ales: usize,
    /// Export the audit package (anchored prefix) of `--state-dir` into this directory and
    /// exit; run it beside the kernel or after it stopped.
    #[arg(long)]
    export_audit: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    if std::process::id() == 1 {
        pid1_main()
    }
    run(Cli::parse())
}

/// PID 1 of the guest image: set the machine up, take the arguments from the kernel command
/// line, run, and never return (see `enclave::pid1`).
fn pid1_main() -> ! {
    let (setup, args) = match pid1::setup() {
        Ok(s) => s,
        Err(e) => pid1::halt(&enclave::boot::error_chain(&e)),
    };
    tracing::info!(
        loaded = setup.loaded.len(),
        eventlog_bytes = setup.eventlog_bytes,
        sealed_share_bytes = setup.sealed_share_bytes,
        "pid 1: filesystems mounted, modules loaded"
    );
    for f in &setup.failed {
        tracing::warn!("pid 1: {}", enclave::boot::error_chain(f));
    }
    tracing::info!("pid 1: arguments {:?}", args.get(1..).unwrap_or_default());
    let cli = match Cli::try_parse_from(&args) {
        Ok(c) => c,
        Err(e) => pid1::halt(&format!("enclave.* kernel parameters: {e}")),
    };
    match run(cli) {
        Ok(()) => pid1::halt("the enclave stopped"),
        Err(e) => pid1::halt(&format!("{e:#}")),
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let key_text = if std::path::Path::new(&cli.verifier_public_key).is_file() {
        std::fs::read_to_string(&cli.verifier_public_key)?
    } else {
        cli.verifier_public_key.clone()
    };
    let verifier_public_key =
        hex::decode(key_text.trim()).context("--verifier-public-key is not hex")?;
    let mut peers = Vec::new();
    for p in &cli.peers {
        let (id, port) = p
            .split_once('=')
            .with_context(|| format!("--peer `{p}` is not ID=PORT"))?;
        peers.push((
            id.to_string(),
            port.parse::<u32>()
                .with_context(|| format!("--peer `{p}`"))?,
        ));
    }
    let mut catalog_publishers = Vec::new();
    for k in &cli.catalog_publishers {
        let key: [u8; 32] = hex::decode(k)
            .ok()
            .and_then(|b| b.try_into().ok())
            .with_context(|| format!("--catalog-publisher `{k}` is not 32 bytes of hex"))?;
        catalog_publishers.push(key);
    }
    let cfg = KernelConfig {
        kernel_id: cli.kernel_id,
        fleet_id: cli.fleet_id,
        state_dir: cli.state_dir,
        vsock: cli.vsock_uds.map(Vsock::Hybrid).unwrap_or(Vsock::Kernel),
        verifier_port: cli.verifier_port,
        peers,
        verifier_public_key,
        cedar_policy: cli.cedar_policy,
        platform: cli.platform,
        tpm_tcti: cli.tpm_tcti,
        event_log: cli.event_log,
        retry: Retry {
            max_attempts: cli.max_attempts,
            ..Retry::default()
        },
        peer_timeout_ms: cli.peer_timeout_ms,
        catalog_publishers,
        catalog_threshold: cli.catalog_threshold,
        gpus: cli.gpus,
        otlp_port: cli.otlp_port,
    };
    if let Some(out) = &cli.export_audit {
        let log = enclave::audit::AuditLog::open(&cfg.state_dir.join("audit.db"))
            .map_err(|e| anyhow::anyhow!(enclave::boot::error_chain(&e)))?;
        let s = log
            .export(&cfg.kernel_id, out)
            .map_err(|e| anyhow::anyhow!(enclave::boot::error_chain(&e)))?;
        println!("{}", serde_json::to_string(&s)?);
        return Ok(());
    }
    let gar = enclave::GarConfig {
        anchor_interval_ms: cli.anchor_interval_ms,
        max_block_ales: cli.max_block_ales,
    };
    if cli.anchor_interval_ms > enclave::gar::MAX_ANCHOR_INTERVAL_MS {
        anyhow::bail!("--anchor-interval-ms is at most 60000 for a gov-tier kernel");
    }
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        let listener = cfg.vsock.listen().context("listening on vsock")?;
        let kernel = Kernel::with_settings(cfg, enclave::ReattestConfig::default(), gar)
            .map_err(|e| anyhow::anyhow!(enclave::boot::error_chain(&e)))?;
        let k = kernel.clone();
        tokio::spawn(async move { k.boot().await });
        let shutdown = async {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(t) => t,
                    Err(_) => return,
                };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        };
        kernel.serve(listener, shutdown).await;
        anyhow::Ok(())
    })
}
