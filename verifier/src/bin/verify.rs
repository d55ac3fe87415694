//! `verify`: offline verification for resource providers and auditors.
//!
//! Exit codes: 0 verified, 1 not verified (the report says which check failed), 2 bad usage
//! or unreadable input.

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Verify a kernel's manifest, evidence and attestation result, or a threshold signature,
/// offline with nothing but the verifier's public key (and optionally the policy).
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
    /// Print the report as JSON.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Subcommand)]
enum Cmd {
    /// Check a `manifest` answer saved as CBOR (the body of the enclave's `manifest` response).
    Manifest {
        /// File with the CBOR `ManifestInfo` (manifest, manifest_hash, bundle, result).
        #[arg(long)]
        input: PathBuf,
        /// Verifier public key (hex) or a file holding it.
        #[arg(long)]
        verifier_public_key: String,
        /// Re-appraise the evidence under this policy (JSON).
        #[arg(long)]
        policy: Option<PathBuf>,
    },
    /// Check an Ed25519 (FROST group) signature over a hex digest.
    Signature {
        /// Group public key (hex, 32 bytes).
        #[arg(long)]
        group_public_key: String,
        /// The signed digest (hex).
        #[arg(long)]
        digest: String,
        /// The signature (hex, 64 bytes).
        #[arg(long)]
        signature: String,
    },
}

fn key_arg(s: &str) -> anyhow::Result<Vec<u8>> {
    let text = if std::path::Path::new(s).is_file() {
        std::fs::read_to_string(s)?
    } else {
        s.to_string()
    };
    hex::decode(text.trim()).context("key is not hex")
}

fn run() -> anyhow::Result<bool> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Manifest {
            input,
            verifier_public_key,
            policy,
        } => {
            let bytes =
                std::fs::read(&input).with_context(|| format!("reading `{}`", input.display()))?;
            let info: wire::msg::ManifestInfo =
                wire::decode(&bytes).context("input is not a manifest answer")?;
            let policy = match policy {
                Some(p) => Some(attestation::appraisal::AppraisalPolicy::from_json(
                    &std::fs::read_to_string(&p)?,
                )?),
                None => None,
            };
            let key = key_arg(&verifier_public_key)?;
            let report = verifier::offline::verify_manifest(
                &info.manifest,
                &info.manifest_hash,
                &info.bundle,
                &info.result,
                &key,
                policy.as_ref(),
            );
            if cli.json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                println!("kernel {} ({})", report.kernel_id, report.level);
                for c in &report.checks {
                    println!(
                        "  [{}] {}: {}",
                        if c.ok { "ok" } else { "FAIL" },
                        c.check,
                        c.detail
                    );
                }
                println!(
                    "{}",
                    if report.verified {
                        "verified"
                    } else {
                        "NOT verified"
                    }
                );
            }
            Ok(report.verified)
        }
        Cmd::Signature {
            group_public_key,
            digest,
            signature,
        } => {
            let ok = verifier::offline::verify_group_signature(
                &hex::decode(group_public_key.trim()).context("group key is not hex")?,
                &hex::decode(digest.trim()).context("digest is not hex")?,
                &hex::decode(signature.trim()).context("signature is not hex")?,
            );
            if cli.json {
                println!("{}", serde_json::json!({ "signature_valid": ok }));
            } else {
                println!(
                    "{}",
                    if ok {
                        "signature valid (ed25519 under the group key)"
                    } else {
                        "signature INVALID"
                    }
                );
            }
            Ok(ok)
        }
    }
}

fn main() {
    match run() {
        Ok(true) => std::process::exit(0),
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(2);
        }
    }
}
