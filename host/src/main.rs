//! `host`: the untrusted host's command line. Parses arguments and calls the library.

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use host::launcher::{self, GuestCid, LaunchSpec, Mode};
use host::proxy::egress::EgressRule;
use host::proxy::inbound::Allowlist;
use host::proxy::limits::{self, Limits};
use host::transport::Endpoint;
use host::{MetricsSnapshot, ProxyConfig};
use std::path::PathBuf;

const AFTER_HELP: &str = "\
Endpoints: unix:/path.sock | tcp:IP:PORT | hybrid:/path/enclave.sock:PORT (Firecracker hybrid \
vsock, host-initiated) | vsock:CID:PORT (AF_VSOCK).

Exit status: 0 on success (the proxy after a clean SIGTERM/SIGINT), 1 on any error (the cause \
chain is printed), 2 on a usage error.

Logs go to stderr; set RUST_LOG (e.g. RUST_LOG=host=debug) to change the level.";

/// The untrusted host side of the enclave appliance: the vsock proxy in front of each
/// enclave, and the QEMU command lines that launch one confidential VM per kernel.
#[derive(Debug, Parser)]
#[command(name = "host", version, after_help = AFTER_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Proxy(ProxyArgs),
    Launch(LaunchArgs),
}

/// Run the vsock proxy until SIGTERM or SIGINT
///
/// Clients go in to the enclave's governance port; the enclave goes out to allowlisted
/// destinations only. On SIGTERM or SIGINT the proxy closes every connection, removes its
/// socket files, writes the metrics file a last time and prints the final counters.
///
/// Inbound, each request frame is checked against the frame limit and the method
/// allowlist and forwarded unchanged; refusals get an error frame and are counted. Egress,
/// each `--egress PORT=ENDPOINT` opens one listener where the guest's connections to host
/// vsock PORT arrive (`<uds>_PORT` for a hybrid enclave endpoint) and forwards them to
/// ENDPOINT; any other port has no listener.
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  host proxy --listen unix:/run/k1/public.sock \\\n    \
    --enclave hybrid:/run/k1/enclave.sock:5000 \\\n    \
    --egress 5100=tcp:127.0.0.1:7000 --egress 5201=unix:/run/k2/public.sock \\\n    \
    --metrics-file /run/k1/metrics.json"
)]
struct ProxyArgs {
    /// Where clients connect (unix: or tcp:).
    #[arg(long, value_name = "ENDPOINT")]
    listen: Endpoint,
    /// The enclave's governance service, e.g. hybrid:/run/k1/enclave.sock:5000 or
    /// vsock:3:5000.
    #[arg(long, value_name = "ENDPOINT")]
    enclave: Endpoint,
    /// An allowlisted destination for the enclave: guest connections to host vsock PORT go
    /// to ENDPOINT (e.g. 5100=tcp:127.0.0.1:7000 for the verifier). Repeatable.
    #[arg(long = "egress", value_name = "PORT=ENDPOINT")]
    egress: Vec<EgressRule>,
    /// A method clients may call. Repeatable; when given, replaces the default list
    /// (health, manifest, evaluate, sign_digest, frost_commit, frost_sign).
    #[arg(long = "allow", value_name = "METHOD")]
    allow: Vec<String>,
    /// Connections served at once per listener; more get a `busy` refusal.
    #[arg(long, value_name = "N", default_value_t = limits::MAX_CONNECTIONS_PER_LISTENER)]
    max_connections: usize,
    /// Close a connection that sends no complete frame for this long.
    #[arg(long, value_name = "MS", default_value_t = limits::IDLE_TIMEOUT_MS)]
    idle_timeout_ms: u64,
    /// Sustained requests per second allowed on one connection.
    #[arg(long, value_name = "N", default_value_t = limits::REQUESTS_PER_SECOND)]
    requests_per_second: u32,
    /// Requests one connection may send back to back.
    #[arg(long, value_name = "N", default_value_t = limits::REQUEST_BURST)]
    request_burst: u32,
    /// Largest frame body forwarded (at most the wire limit of 1 MiB).
    #[arg(long, value_name = "BYTES", default_value_t = limits::FRAME_LIMIT_BYTES)]
    max_frame_bytes: u32,
    /// Keep a JSON snapshot of the counters here, rewritten every second and at exit.
    #[arg(long, value_name = "PATH")]
    metrics_file: Option<PathBuf>,
    /// At exit, print the final counters as JSON on stdout (else a one-line summary).
    #[arg(long)]
    json: bool,
}

/// Print the QEMU command line for one kernel's CVM (does not run QEMU)
///
/// Builds the argv that launches one confidential VM: SEV-SNP, TDX, or a dev VM without a
/// TEE, each with a vhost-vsock device for the guest CID and a TPM CRB device backed by
/// swtpm. It does not execute QEMU: run the printed argv under your own supervisor, after
/// starting swtpm on --tpm-sock.
#[derive(Debug, Args)]
struct LaunchArgs {
    /// sev-snp (AMD SEV-SNP), tdx (Intel TDX) or dev (QEMU TCG, no TEE; KEE1-L1 only).
    #[arg(long, value_name = "MODE")]
    mode: Mode,
    /// Guest kernel image.
    #[arg(long, value_name = "PATH")]
    kernel: PathBuf,
    /// Initramfs whose /init is the enclave.
    #[arg(long, value_name = "PATH")]
    initrd: PathBuf,
    /// vsock context id of this CVM (3 or more, unique per host).
    #[arg(long, value_name = "N")]
    cid: u32,
    /// swtpm control socket (swtpm socket --tpm2 --ctrl type=unixio,path=...).
    #[arg(long, value_name = "PATH")]
    tpm_sock: PathBuf,
    /// Firmware; default /usr/share/ovmf/OVMF.amdsev.fd (sev-snp),
    /// /usr/share/ovmf/OVMF.inteltdx.fd (tdx), none (dev).
    #[arg(long, value_name = "PATH")]
    firmware: Option<PathBuf>,
    /// Kernel command line; measured under SEV-SNP kernel-hashes, so it must match the
    /// reference values.
    #[arg(long, value_name = "CMDLINE", default_value = launcher::DEFAULT_APPEND)]
    append: String,
    /// Guest memory in MiB.
    #[arg(long, value_name = "MIB", default_value_t = launcher::DEFAULT_MEMORY_MIB)]
    memory_mib: u32,
    /// Guest vCPUs.
    #[arg(long, value_name = "N", default_value_t = launcher::DEFAULT_VCPUS)]
    vcpus: u32,
    /// QEMU binary to name in argv[0].
    #[arg(long, value_name = "PATH", default_value = launcher::DEFAULT_QEMU)]
    qemu: PathBuf,
    /// Print the argv as a JSON array instead of a shell-quoted line.
    #[arg(long)]
    json: bool,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match cli.command {
        Command::Proxy(args) => proxy(args),
        Command::Launch(args) => launch(args),
    }
}

fn proxy(args: ProxyArgs) -> Result<()> {
    let allow = if args.allow.is_empty() {
        Allowlist::default()
    } else {
        Allowlist::new(&args.allow).context("bad --allow")?
    };
    let config = ProxyConfig {
        listen: args.listen,
        enclave: args.enclave,
        egress: args.egress,
        allow,
        limits: Limits {
            max_connections: args.max_connections,
            idle_timeout_ms: args.idle_timeout_ms,
            requests_per_second: args.requests_per_second,
            request_burst: args.request_burst,
            frame_limit_bytes: args.max_frame_bytes,
            ..Limits::default()
        },
        metrics_file: args.metrics_file,
    };
    let runtime = tokio::runtime::Runtime::new().context("could not start the async runtime")?;
    let snapshot = runtime.block_on(async {
        let shutdown = shutdown_signal().context("could not install signal handlers")?;
        host::run_proxy(config, shutdown)
            .await
            .context("proxy failed")
    })?;
    print_snapshot(&snapshot, args.json)
}

/// Completes on the first SIGTERM or SIGINT.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = int.recv() => tracing::info!("SIGINT: shutting down"),
        }
    })
}

fn print_snapshot(s: &MetricsSnapshot, json: bool) -> Result<()> {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(s).context("could not encode counters")?
        );
    } else {
        let (i, e) = (&s.inbound, &s.egress);
        println!(
            "inbound: {} accepted, {} forwarded, refused {} method / {} oversize / {} garbage / \
             {} busy / {} rate, {} idle, {} upstream errors; egress: {} accepted, {} forwarded, \
             {} upstream errors",
            i.accepted,
            i.forwarded,
            i.refused_method,
            i.refused_oversize,
            i.refused_garbage,
            i.refused_busy,
            i.refused_rate,
            i.idle_timeouts,
            i.upstream_errors,
            e.accepted,
            e.forwarded,
            e.upstream_errors
        );
    }
    Ok(())
}

fn launch(args: LaunchArgs) -> Result<()> {
    let cid = GuestCid::try_from(args.cid).context("bad --cid")?;
    let mut spec = LaunchSpec::new(args.mode, args.kernel, args.initrd, cid, args.tpm_sock);
    spec.firmware = args.firmware;
    spec.append = args.append;
    spec.memory_mib = args.memory_mib;
    spec.vcpus = args.vcpus;
    spec.qemu = args.qemu;
    let argv = launcher::qemu_argv(&spec).context("could not build the qemu command line")?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&argv).context("could not encode argv")?
        );
    } else {
        println!("{}", launcher::shell_line(&argv));
    }
    Ok(())
}
