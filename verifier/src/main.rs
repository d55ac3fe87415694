//! `verifier`: the relying-party service and the key ceremony.

use anyhow::Context;
use attestation::appraisal::AppraisalPolicy;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::sync::Arc;

/// Relying party and key broker for governance kernels.
///
/// Exit codes: 0 success, 1 failure (the message says which check or file), 2 usage error.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve nonces, appraisals and wrap-key release over TCP until SIGINT/SIGTERM.
    Serve {
        /// SQLite state file (created if missing).
        #[arg(long)]
        db: PathBuf,
        /// Appraisal policy (JSON).
        #[arg(long)]
        policy: PathBuf,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:7000")]
        listen: std::net::SocketAddr,
        /// Write the result-signing public key (hex) here once listening.
        #[arg(long)]
        public_key_out: Option<PathBuf>,
    },
    /// Generate a FROST t-of-n key, seal one share per kernel, register the wrap keys.
    Ceremony {
        /// SQLite state file.
        #[arg(long)]
        db: PathBuf,
        /// Appraisal policy (its reference values bind the sealed shares).
        #[arg(long)]
        policy: PathBuf,
        /// Threshold t (at least 2).
        #[arg(long, default_value_t = 2)]
        threshold: u16,
        /// Number of signers n.
        #[arg(long, default_value_t = 3)]
        signers: u16,
        /// Kernel ids, one per signer (default k1..kn).
        #[arg(long = "kernel")]
        kernels: Vec<String>,
        /// Root directory of the kernels' state; shares go to <root>/<kernel>/sealed_share.cbor.
        #[arg(long)]
        state_root: PathBuf,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the result-signing public key.
    PublicKey {
        /// SQLite state file.
        #[arg(long)]
        db: PathBuf,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
}

fn load_policy(path: &PathBuf) -> anyhow::Result<AppraisalPolicy> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading policy `{}`", path.display()))?;
    AppraisalPolicy::from_json(&text).with_context(|| format!("policy `{}`", path.display()))
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().cmd {
        Cmd::Serve {
            db,
            policy,
            listen,
            public_key_out,
        } => {
            let policy = load_policy(&policy)?;
            let store =
                Arc::new(verifier::Store::open(&db).context("opening the verifier database")?);
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(async move {
                let handle = verifier::serve(verifier::ServiceConfig { listen, policy }, store).await?;
                if let Some(out) = public_key_out {
                    std::fs::write(&out, hex::encode(&handle.public_key))
                        .with_context(|| format!("writing `{}`", out.display()))?;
                }
                tracing::info!(addr = %handle.addr, key = %hex::encode(&handle.public_key), "verifier listening");
                let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
                handle.stop();
                anyhow::Ok(())
            })
        }
        Cmd::Ceremony {
            db,
            policy,
            threshold,
            signers,
            kernels,
            state_root,
            json,
        } => {
            let policy = load_policy(&policy)?;
            let kernels = if kernels.is_empty() {
                (1..=signers).map(|i| format!("k{i}")).collect()
            } else {
                kernels
            };
            if kernels.len() != usize::from(signers) {
                anyhow::bail!("{} kernel ids given for {signers} signers", kernels.len());
            }
            let store = verifier::Store::open(&db).context("opening the verifier database")?;
            let out = verifier::ceremony::run(&store, &policy, threshold, &kernels, &state_root)?;
            if json {
                println!("{}", serde_json::to_string(&out)?);
            } else {
                println!(
                    "ceremony {}: frost:t-of-n:{}-{}",
                    out.ceremony_id, out.threshold, out.signers
                );
                println!("group public key: {}", out.group_public_key);
                for (k, p) in &out.sealed_shares {
                    println!("  {k}: sealed share at {}", p.display());
                }
            }
            Ok(())
        }
        Cmd::PublicKey { db, json } => {
            let store = verifier::Store::open(&db).context("opening the verifier database")?;
            let signer = verifier::service::load_signer(&store)?;
            let key = hex::encode(signer.public_key());
            if json {
                println!("{}", serde_json::json!({ "public_key": key }));
            } else {
                println!("{key}");
            }
            Ok(())
        }
    }
}
