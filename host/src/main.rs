//! `host`: the untrusted host's command line. Parses arguments and calls the library.

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use host::launcher::{self, GuestCid, Mode, VsockDevice};
use host::proxy::config;
use host::proxy::egress::EgressRule;
use host::proxy::inbound::Allowlist;
use host::proxy::limits::{self, Limits};
use host::supervisor::{self, KernelId, LaunchRequest};
use host::transport::Endpoint;
use host::{MetricsSnapshot, ProxyConfig, TlsRoute};
use std::path::PathBuf;

const AFTER_HELP: &str = "\
Endpoints: unix:/path.sock | tcp:IP:PORT | dns:HOST:PORT (destinations only, resolved at each \
connect) | hybrid:/path/enclave.sock:PORT (Firecracker hybrid vsock, host-initiated) | \
vsock:CID:PORT (AF_VSOCK).

Exit status: 0 on success (the proxy after a clean SIGTERM/SIGINT), 1 on any error (the cause \
chain is printed), 2 on a usage error.

Logs go to stderr; set RUST_LOG (e.g. RUST_LOG=host=debug) to change the level.";

/// The untrusted host side of the enclave appliance: the vsock proxy in front of each
/// enclave, and one confidential VM per kernel (launch, ps, stop, logs).
#[derive(Debug, Parser)]
#[command(name = "host", version, after_help = AFTER_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Proxy(Box<ProxyArgs>),
    Launch(LaunchArgs),
    Ps(PsArgs),
    Stop(StopArgs),
    Logs(LogsArgs),
}

/// Run the vsock proxy until SIGTERM or SIGINT
///
/// Clients go in to the enclave's governance port; the enclave goes out to allowlisted
/// destinations only. On SIGTERM or SIGINT the proxy closes every connection, removes its
/// socket files, writes the metrics file a last time and prints the final counters.
///
/// Frame route (--listen): each request frame is checked against the frame limit and the
/// method allowlist and forwarded unchanged; refusals get an error frame and are counted.
/// TLS route (--listen-tls): TLS records are carried to the enclave's TLS server, where the
/// connection terminates under a certificate carrying the kernel's attestation; the proxy
/// checks record framing, size, handshake deadline and rate, and sees only ciphertext.
/// Egress: each `--egress PORT=ENDPOINT` opens one listener where the guest's connections
/// to host vsock PORT arrive (`<uds>_PORT` for a hybrid enclave endpoint) and forwards them
/// to ENDPOINT; any other port has no listener.
///
/// Everything can come from one TOML file instead (--config); see docs/operator.md.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  host proxy --listen unix:/run/k1/public.sock \\\n    \
    --enclave hybrid:/run/k1/enclave.sock:5000 \\\n    \
    --listen-tls unix:/run/k1/tls.sock --enclave-tls hybrid:/run/k1/enclave.sock:5443 \\\n    \
    --egress-tls 5100=tcp:127.0.0.1:7000 --egress-tls 5201=unix:/run/k2/tls.sock \\\n    \
    --egress-http 5300=tcp:127.0.0.1:4318 \\\n    \
    --metrics-listen tcp:127.0.0.1:9464 --metrics-file /run/k1/metrics.json\n  \
    host proxy --config /etc/enclave/k1-proxy.toml"
)]
struct ProxyArgs {
    /// Read routes, egress allowlist and limits from this TOML file (the other route and
    /// limit options may not be combined with it).
    #[arg(long, value_name = "FILE", conflicts_with_all = [
        "listen", "enclave", "listen_tls", "enclave_tls", "egress", "egress_tls", "egress_http",
        "allow", "max_connections",
        "max_connections_total", "max_connections_per_peer", "idle_timeout_ms",
        "handshake_timeout_ms", "requests_per_second", "request_burst",
        "peer_requests_per_second", "peer_request_burst", "max_frame_bytes", "max_record_bytes",
    ])]
    config: Option<PathBuf>,
    /// Where frame clients connect (unix: or tcp:).
    #[arg(long, value_name = "ENDPOINT", required_unless_present = "config")]
    listen: Option<Endpoint>,
    /// The enclave's governance service, e.g. hybrid:/run/k1/enclave.sock:5000 or
    /// vsock:3:5000.
    #[arg(long, value_name = "ENDPOINT", required_unless_present = "config")]
    enclave: Option<Endpoint>,
    /// Where TLS clients connect (unix: or tcp:); needs --enclave-tls.
    #[arg(long, value_name = "ENDPOINT", requires = "enclave_tls")]
    listen_tls: Option<Endpoint>,
    /// The enclave's TLS server, e.g. hybrid:/run/k1/enclave.sock:5443.
    #[arg(long, value_name = "ENDPOINT", requires = "listen_tls")]
    enclave_tls: Option<Endpoint>,
    /// An allowlisted destination for the enclave, carrying frames: guest connections to
    /// host vsock PORT go to ENDPOINT (e.g. 5100=dns:verifier.internal:7000). Kernels speak
    /// TLS to the verifier and to peers: give those routes with --egress-tls. Repeatable.
    #[arg(long = "egress", value_name = "PORT=ENDPOINT")]
    egress: Vec<EgressRule>,
    /// An allowlisted OpenTelemetry collector: guest connections to host vsock PORT carry
    /// OTLP/HTTP exports (`POST /v1/traces`) to ENDPOINT, the collector's OTLP/HTTP port
    /// (e.g. 5300=tcp:10.0.0.9:4318). Repeatable.
    #[arg(long = "egress-http", value_name = "PORT=ENDPOINT")]
    egress_http: Vec<EgressRule>,
    /// An allowlisted destination carried as TLS records, not frames: a peer kernel's TLS
    /// route, for the mutually attested kernel-to-kernel link (e.g.
    /// 5201=unix:/run/k2/tls.sock). Repeatable.
    #[arg(long = "egress-tls", value_name = "PORT=ENDPOINT")]
    egress_tls: Vec<EgressRule>,
    /// A method frame clients may call. Repeatable; when given, replaces the default list
    /// (health, manifest, evaluate, sign_digest, catalog_update; peer-kernel methods travel
    /// only over attested TLS).
    #[arg(long = "allow", value_name = "METHOD")]
    allow: Vec<String>,
    /// Connections served at once per listener; more are refused (busy).
    #[arg(long, value_name = "N", default_value_t = limits::MAX_CONNECTIONS_PER_LISTENER)]
    max_connections: usize,
    /// Connections served at once by the whole proxy.
    #[arg(long, value_name = "N", default_value_t = limits::MAX_CONNECTIONS_TOTAL)]
    max_connections_total: usize,
    /// Connections one peer (IP address, Unix uid, vsock cid) may hold at once.
    #[arg(long, value_name = "N", default_value_t = limits::MAX_CONNECTIONS_PER_PEER)]
    max_connections_per_peer: usize,
    /// Close a connection that sends no complete frame or record for this long.
    #[arg(long, value_name = "MS", default_value_t = limits::IDLE_TIMEOUT_MS)]
    idle_timeout_ms: u64,
    /// Close a new connection whose first frame (or TLS handshake) takes longer than this.
    #[arg(long, value_name = "MS", default_value_t = limits::HANDSHAKE_TIMEOUT_MS)]
    handshake_timeout_ms: u64,
    /// Sustained requests (frames or records) per second allowed on one connection.
    #[arg(long, value_name = "N", default_value_t = limits::REQUESTS_PER_SECOND)]
    requests_per_second: u32,
    /// Requests one connection may send back to back.
    #[arg(long, value_name = "N", default_value_t = limits::REQUEST_BURST)]
    request_burst: u32,
    /// Sustained requests per second allowed to one peer over all its connections.
    #[arg(long, value_name = "N", default_value_t = limits::PEER_REQUESTS_PER_SECOND)]
    peer_requests_per_second: u32,
    /// Requests one peer may send back to back over all its connections.
    #[arg(long, value_name = "N", default_value_t = limits::PEER_REQUEST_BURST)]
    peer_request_burst: u32,
    /// Largest frame body forwarded (at most the wire limit of 1 MiB).
    #[arg(long, value_name = "BYTES", default_value_t = limits::FRAME_LIMIT_BYTES)]
    max_frame_bytes: u32,
    /// Largest TLS record body forwarded (at most TLS 1.3's 16640).
    #[arg(long, value_name = "BYTES", default_value_t = limits::RECORD_LIMIT_BYTES)]
    max_record_bytes: u32,
    /// Serve the counters as Prometheus text on this endpoint (GET /metrics).
    #[arg(long, value_name = "ENDPOINT")]
    metrics_listen: Option<Endpoint>,
    /// Keep a JSON snapshot of the counters here, rewritten every second and at exit.
    #[arg(long, value_name = "PATH")]
    metrics_file: Option<PathBuf>,
    /// At exit, print the final counters as JSON on stdout (else a one-line summary).
    #[arg(long)]
    json: bool,
}

/// Launch one kernel's confidential VM, with its own state directory, swtpm and vsock CID
///
/// Creates `<state-root>/<kernel-id>/`, starts swtpm there, then QEMU with the kernel,
/// initramfs and cmdline of the image directory (`vmlinuz`, `initrd.img`, `cmdline`), and
/// returns once QEMU answers on its QMP socket: every option accepted, every device
/// realized. If swtpm or QEMU exits while starting, the launch fails with the tail of its
/// log and stops what it started.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  host launch --kernel-id k1 --platform snp --vcpus 2 --memory 4G --image /srv/image\n  \
    host launch --kernel-id k1 --platform dev --vcpus 1 --memory 512M --image ./out --dry-run --json"
)]
struct LaunchArgs {
    /// Kernel id (names the state directory and the VM).
    #[arg(long, value_name = "ID")]
    kernel_id: KernelId,
    /// snp (AMD SEV-SNP), tdx (Intel TDX) or dev (QEMU TCG, no TEE; KEE1-L1 only).
    #[arg(long, value_name = "PLATFORM")]
    platform: Mode,
    /// Guest vCPUs.
    #[arg(long, value_name = "N", default_value_t = launcher::DEFAULT_VCPUS)]
    vcpus: u32,
    /// Guest memory: MiB, or a number with an M or G suffix.
    #[arg(long, value_name = "SIZE", default_value = "2048", value_parser = parse_memory)]
    memory: u32,
    /// Image directory (vmlinuz, initrd.img, optional cmdline), as `image build` writes it.
    #[arg(long, value_name = "DIR")]
    image: PathBuf,
    /// vsock context id (3 or more, unique per host); default: the lowest free one.
    #[arg(long, value_name = "N")]
    cid: Option<u32>,
    /// Firmware; default /usr/share/ovmf/OVMF.amdsev.fd (snp), /usr/share/ovmf/OVMF.inteltdx.fd
    /// (tdx), none (dev).
    #[arg(long, value_name = "PATH")]
    firmware: Option<PathBuf>,
    /// vsock device: vhost (host kernel /dev/vhost-vsock) or none (console-only VM, for
    /// checking that an image boots; such a kernel never unseals).
    #[arg(long, value_name = "DEVICE", default_value = "vhost")]
    vsock: VsockDevice,
    /// Start with the vCPUs stopped (QEMU -S): everything set up and checked, nothing run.
    #[arg(long)]
    paused: bool,
    /// Print the QEMU argv that would be run, start nothing.
    #[arg(long)]
    dry_run: bool,
    /// QEMU binary.
    #[arg(long, value_name = "PATH", default_value = launcher::DEFAULT_QEMU)]
    qemu: PathBuf,
    /// swtpm binary.
    #[arg(long, value_name = "PATH", default_value = supervisor::DEFAULT_SWTPM)]
    swtpm: PathBuf,
    #[command(flatten)]
    root: StateRoot,
    /// Print the instance record (or, with --dry-run, the argv) as JSON.
    #[arg(long)]
    json: bool,
}

/// Where kernel state directories live.
#[derive(Debug, Args)]
struct StateRoot {
    /// State root; default $ENCLAVE_HOST_STATE, else /var/lib/enclave-host.
    #[arg(long, value_name = "DIR")]
    state_root: Option<PathBuf>,
}

impl StateRoot {
    fn path(&self) -> PathBuf {
        self.state_root.clone().unwrap_or_else(|| {
            std::env::var_os(supervisor::STATE_ROOT_ENV)
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(supervisor::DEFAULT_STATE_ROOT))
        })
    }
}

/// List the kernels under the state root and their VMs' state
#[derive(Debug, Args)]
struct PsArgs {
    #[command(flatten)]
    root: StateRoot,
    /// Print a JSON array of instance records with their state.
    #[arg(long)]
    json: bool,
}

/// Stop a kernel's VM (QMP quit, then SIGTERM/SIGKILL) and its swtpm
#[derive(Debug, Args)]
struct StopArgs {
    /// Kernel id.
    #[arg(value_name = "ID")]
    kernel_id: KernelId,
    /// Remove the state directory (vTPM state, logs) afterwards.
    #[arg(long)]
    purge: bool,
    #[command(flatten)]
    root: StateRoot,
    /// Print what was done as JSON.
    #[arg(long)]
    json: bool,
}

/// Print the tail of a kernel's console (serial and QEMU messages) and swtpm logs
#[derive(Debug, Args)]
struct LogsArgs {
    /// Kernel id.
    #[arg(value_name = "ID")]
    kernel_id: KernelId,
    /// Bytes of each log to show, from the end.
    #[arg(long, value_name = "BYTES", default_value_t = 16 * 1024)]
    bytes: u64,
    #[command(flatten)]
    root: StateRoot,
    /// Print {kernel_id, console, swtpm, failure} as JSON.
    #[arg(long)]
    json: bool,
}

fn parse_memory(text: &str) -> Result<u32, String> {
    launcher::parse_memory_mib(text).map_err(|e| e.to_string())
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
        Command::Proxy(args) => proxy(*args),
        Command::Launch(args) => launch(args),
        Command::Ps(args) => ps(args),
        Command::Stop(args) => stop(args),
        Command::Logs(args) => logs(args),
    }
}

fn proxy_config(args: &ProxyArgs) -> Result<ProxyConfig> {
    let mut config = if let Some(path) = &args.config {
        config::load(path).with_context(|| format!("bad --config `{}`", path.display()))?
    } else {
        let (Some(listen), Some(enclave)) = (args.listen.clone(), args.enclave.clone()) else {
            anyhow::bail!("--listen and --enclave are required without --config");
        };
        let mut config = ProxyConfig::new(listen, enclave);
        if !args.allow.is_empty() {
            config.allow = Allowlist::new(&args.allow).context("bad --allow")?;
        }
        if let (Some(listen), Some(enclave)) = (args.listen_tls.clone(), args.enclave_tls.clone()) {
            config.tls = Some(TlsRoute { listen, enclave });
        }
        config.egress = args.egress.clone();
        config.egress_http = args.egress_http.clone();
        config.egress_tls = args.egress_tls.clone();
        config.limits = Limits {
            max_connections: args.max_connections,
            max_connections_total: args.max_connections_total,
            max_connections_per_peer: args.max_connections_per_peer,
            idle_timeout_ms: args.idle_timeout_ms,
            handshake_timeout_ms: args.handshake_timeout_ms,
            requests_per_second: args.requests_per_second,
            request_burst: args.request_burst,
            peer_requests_per_second: args.peer_requests_per_second,
            peer_request_burst: args.peer_request_burst,
            frame_limit_bytes: args.max_frame_bytes,
            record_limit_bytes: args.max_record_bytes,
            ..Limits::default()
        };
        config
    };
    if args.metrics_listen.is_some() {
        config.metrics_listen = args.metrics_listen.clone();
    }
    if args.metrics_file.is_some() {
        config.metrics_file = args.metrics_file.clone();
    }
    Ok(config)
}

/// Raises the soft RLIMIT_NOFILE to the hard limit: the proxy holds one descriptor per
/// connection and side, and the default soft limit (often 1024) would refuse clients long
/// before the configured connection limits do.
fn raise_nofile_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    // `None` is "unlimited".
    if limit.current != limit.maximum {
        limit.current = limit.maximum;
        if let Err(e) = setrlimit(Resource::Nofile, limit) {
            tracing::warn!(error = %e, "could not raise the open-file limit");
        }
    }
}

fn proxy(args: ProxyArgs) -> Result<()> {
    let config = proxy_config(&args)?;
    raise_nofile_limit();
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
        let (i, t, e) = (&s.inbound, &s.inbound_tls, &s.egress);
        println!(
            "inbound: {} accepted, {} forwarded, refused {} method / {} oversize / {} garbage / \
             {} busy / {} rate, {} timed out, {} upstream errors; inbound tls: {} accepted, \
             {} records forwarded, {} refused; egress: {} accepted, {} forwarded, {} refused",
            i.accepted,
            i.forwarded,
            i.refused_method,
            i.refused_oversize,
            i.refused_garbage,
            i.refused_busy + i.refused_busy_total + i.refused_busy_peer,
            i.refused_rate + i.refused_rate_peer,
            i.idle_timeouts + i.handshake_timeouts,
            i.upstream_errors,
            t.accepted,
            t.forwarded,
            t.refusals(),
            e.accepted,
            e.forwarded,
            e.refusals()
        );
    }
    Ok(())
}

fn print_json(value: &impl serde::Serialize) -> Result<()> {
    println!(
        "{}",
        serde_json::to_string_pretty(value).context("could not encode json")?
    );
    Ok(())
}

fn launch(args: LaunchArgs) -> Result<()> {
    let cid = args
        .cid
        .map(GuestCid::try_from)
        .transpose()
        .context("bad --cid")?;
    let req = LaunchRequest {
        kernel_id: args.kernel_id,
        platform: args.platform,
        vcpus: args.vcpus,
        memory_mib: args.memory,
        image: args.image,
        cid,
        firmware: args.firmware,
        vsock: args.vsock,
        paused: args.paused,
        qemu: args.qemu,
        swtpm: args.swtpm,
        state_root: args.root.path(),
    };
    if args.dry_run {
        let plan = supervisor::plan(&req).context("could not plan the launch")?;
        if args.json {
            return print_json(&plan.argv);
        }
        println!("{}", launcher::shell_line(&plan.argv));
        return Ok(());
    }
    let instance = supervisor::launch(&req)
        .with_context(|| format!("could not launch kernel `{}`", req.kernel_id))?;
    if args.json {
        return print_json(&instance);
    }
    println!(
        "{}: {} VM up, vsock cid {}, qemu pid {}, state {}",
        instance.kernel_id,
        instance.platform,
        instance.cid,
        instance.qemu.map(|p| p.pid).unwrap_or_default(),
        instance.state_dir.display()
    );
    Ok(())
}

fn ps(args: PsArgs) -> Result<()> {
    let root = args.root.path();
    let all: Vec<_> = supervisor::instances(&root)
        .context("could not read the state root")?
        .iter()
        .map(supervisor::status)
        .collect();
    if args.json {
        return print_json(&all);
    }
    println!(
        "{:<20} {:<8} {:>5} {:>5} {:>7} {:>8}  STATE",
        "KERNEL", "PLATFORM", "CID", "VCPUS", "MEM_MIB", "QEMU_PID"
    );
    for s in &all {
        let i = &s.instance;
        println!(
            "{:<20} {:<8} {:>5} {:>5} {:>7} {:>8}  {}",
            i.kernel_id.to_string(),
            i.platform,
            i.cid,
            i.vcpus,
            i.memory_mib,
            i.qemu
                .map(|p| p.pid.to_string())
                .unwrap_or_else(|| "-".into()),
            s.state
        );
    }
    Ok(())
}

fn stop(args: StopArgs) -> Result<()> {
    let stopped = supervisor::stop(&args.root.path(), &args.kernel_id, args.purge)
        .with_context(|| format!("could not stop kernel `{}`", args.kernel_id))?;
    if args.json {
        return print_json(&stopped);
    }
    println!("{}: stopped ({})", stopped.kernel_id, stopped.how);
    Ok(())
}

fn logs(args: LogsArgs) -> Result<()> {
    let logs = supervisor::logs(&args.root.path(), &args.kernel_id, args.bytes)
        .with_context(|| format!("could not read the logs of `{}`", args.kernel_id))?;
    if args.json {
        return print_json(&logs);
    }
    if let Some(f) = &logs.failure {
        println!("== launch failed: {f}");
    }
    println!("== console\n{}", logs.console);
    println!("== swtpm\n{}", logs.swtpm);
    Ok(())
}
