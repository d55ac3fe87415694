//! `attested-call`: one governance call to a kernel over attested TLS, as a relying party
//! makes it. The handshake appraises the kernel's certificate (its evidence bundle and the
//! verifier's signed result) against the caller's policy before a byte of the request is
//! sent; a kernel that does not satisfy the policy gets no request at all.
//!
//! Exit codes: 0 the call was made (whatever the kernel answered), 1 the kernel was refused
//! in the handshake or the connection failed, 2 usage error (bad flags, unreadable files).

use anyhow::Context;
use attestation::appraisal::AppraisalPolicy;
use attestation::Level;
use attested_tls::{verify::peer_of, PeerPolicy};
use clap::Parser;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use wire::msg::{Request, Response};

/// Call a governance kernel over attested TLS: the kernel's certificate must carry evidence
/// and an affirming result of the verifier you pin, for a kernel id and level you accept.
#[derive(Parser, Debug)]
#[command(version, about, after_help = AFTER_HELP)]
struct Cli {
    /// Where the kernel's TLS route listens: `unix:PATH` or `tcp:IP:PORT` (the host proxy's
    /// `--listen-tls`).
    #[arg(long, value_name = "ENDPOINT")]
    connect: String,
    /// The verifier's result-signing public key (hex), or a file holding it.
    #[arg(long, value_name = "HEX|FILE")]
    verifier_public_key: String,
    /// Accept only this kernel id (repeat for several; default: any kernel).
    #[arg(long = "kernel-id", value_name = "ID")]
    kernel_ids: Vec<String>,
    /// Accept these levels (repeat; default KEE1-L3 only).
    #[arg(long = "level", value_name = "LEVEL", default_values_t = vec!["KEE1-L3".to_string()])]
    levels: Vec<String>,
    /// Also appraise the evidence yourself against this appraisal policy (JSON, with its
    /// reference values), on top of the verifier's result.
    #[arg(long, value_name = "FILE")]
    appraise_with: Option<PathBuf>,
    /// The request, as JSON (`{"method":"health"}`, `{"method":"evaluate","params":{...}}`).
    #[arg(long, value_name = "JSON", default_value = r#"{"method":"health"}"#)]
    request: String,
    /// Print one JSON object (the attested peer and the response).
    #[arg(long)]
    json: bool,
}

const AFTER_HELP: &str = "Example:\n  attested-call --connect unix:/run/k1/tls.sock --verifier-public-key verifier.pub \\\n    --kernel-id k1 --level KEE1-L1 \\\n    --request '{\"method\":\"evaluate\",\"params\":{\"principal\":\"Agent::\\\"planner\\\"\",\"action\":\"Action::\\\"read\\\"\",\"resource\":\"Dataset::\\\"census\\\"\",\"context_json\":\"{}\",\"entities_json\":\"\",\"session_id\":\"s1\"}}'\n\nExit status: 0 the call was made, 1 the kernel was refused (the reason is printed) or unreachable, 2 usage error.";

/// Who the handshake proved is on the other end (printed, and under `peer` with `--json`).
#[derive(serde::Serialize)]
struct PeerView {
    kernel_id: String,
    level: &'static str,
    attestation_key: String,
    bundle_digest: String,
    status: &'static str,
    policy_id: String,
    verifier_id: String,
    result_issued_at_ms: u64,
    result_expires_at_ms: u64,
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

fn usage(e: impl std::fmt::Display) -> ! {
    eprintln!("attested-call: {e}");
    std::process::exit(2)
}

fn main() {
    let cli = Cli::parse();
    let key_text = if std::path::Path::new(&cli.verifier_public_key).is_file() {
        std::fs::read_to_string(&cli.verifier_public_key).unwrap_or_else(|e| usage(e))
    } else {
        cli.verifier_public_key.clone()
    };
    let key = hex::decode(key_text.trim())
        .unwrap_or_else(|e| usage(format!("--verifier-public-key is not hex: {e}")));
    let levels: Vec<Level> = cli
        .levels
        .iter()
        .map(|l| {
            serde_json::from_value::<Level>(serde_json::Value::String(l.clone()))
                .unwrap_or_else(|_| usage(format!("unknown level `{l}`")))
        })
        .collect();
    let mut policy = PeerPolicy::new(key, levels);
    if !cli.kernel_ids.is_empty() {
        policy = policy.kernels(cli.kernel_ids.clone());
    }
    if let Some(path) = &cli.appraise_with {
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| usage(e));
        let p = AppraisalPolicy::from_json(&text).unwrap_or_else(|e| usage(e));
        policy = policy.appraise_with(p);
    }
    let request: Request = serde_json::from_str(&cli.request)
        .unwrap_or_else(|e| usage(format!("--request is not a request: {e}")));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| usage(e));
    match rt.block_on(call(&cli.connect, policy, &request)) {
        Ok((peer, response)) => {
            if cli.json {
                println!(
                    "{}",
                    serde_json::json!({ "peer": peer, "response": response })
                );
            } else {
                println!(
                    "attested: kernel {} at {} (result {} under policy `{}`, expires at {} ms)",
                    peer.kernel_id,
                    peer.level,
                    peer.status,
                    peer.policy_id,
                    peer.result_expires_at_ms
                );
                println!(
                    "{}",
                    serde_json::to_string_pretty(&response).unwrap_or_default()
                );
            }
        }
        Err(e) => {
            if cli.json {
                println!("{}", serde_json::json!({ "refused": format!("{e:#}") }));
            } else {
                eprintln!("attested-call: {e:#}");
            }
            std::process::exit(1)
        }
    }
}

async fn call(
    connect: &str,
    policy: PeerPolicy,
    request: &Request,
) -> anyhow::Result<(PeerView, Response)> {
    let stream: Box<dyn Io> = if let Some(path) = connect.strip_prefix("unix:") {
        Box::new(
            tokio::net::UnixStream::connect(path)
                .await
                .with_context(|| format!("connecting to `{connect}`"))?,
        )
    } else if let Some(addr) = connect.strip_prefix("tcp:") {
        Box::new(
            tokio::net::TcpStream::connect(addr)
                .await
                .with_context(|| format!("connecting to `{connect}`"))?,
        )
    } else {
        usage(format!(
            "--connect `{connect}` is not unix:PATH or tcp:IP:PORT"
        ))
    };
    let config = attested_tls::client_config(policy.clone(), None)?;
    let name = attested_tls::SERVER_NAME
        .try_into()
        .context("attested tls server name")?;
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, stream)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "the kernel was refused in the attested handshake: {}",
                refusal(&e)
            )
        })?;
    let peer = peer_of(tls.get_ref().1.peer_certificates(), &policy)?;
    wire::write_frame(&mut tls, &wire::encode(request)?).await?;
    let response: Response = wire::decode(&wire::read_frame(&mut tls).await?)?;
    let r = peer.result();
    let peer = PeerView {
        kernel_id: peer.kernel_id().to_string(),
        level: peer.level().as_str(),
        attestation_key: hex::encode(peer.public_key()),
        bundle_digest: hex::encode(peer.bundle_digest()),
        status: r.status.as_str(),
        policy_id: r.policy_id.clone(),
        verifier_id: r.verifier_id.clone(),
        result_issued_at_ms: r.issued_at_ms,
        result_expires_at_ms: r.expires_at_ms,
    };
    Ok((peer, response))
}

/// The reason a handshake failed: the attested verifier's own error when it refused the
/// certificate, else the TLS or I/O error.
fn refusal(e: &std::io::Error) -> String {
    use rustls::{CertificateError, Error};
    match e.get_ref().and_then(|inner| inner.downcast_ref::<Error>()) {
        Some(Error::InvalidCertificate(CertificateError::Other(other))) => other.0.to_string(),
        Some(other) => other.to_string(),
        None => e.to_string(),
    }
}
