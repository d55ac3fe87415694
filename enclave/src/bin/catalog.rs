//! `catalog`: the publishers' tool for KEE-1 P4 catalog updates — make a key, write an
//! update, sign it (each publisher on their own machine), inspect and check it offline.
//! The kernel accepts the result through `catalog_update` only with a threshold of
//! signatures by the publishers pinned in its manifest.
//!
//! Exit codes: 0 success (for `check`: the update would be staged), 1 `check` refused the
//! update (the reason is printed), 2 usage or I/O error.

use anyhow::Context;
use clap::{Parser, Subcommand};
use enclave::catalog::{
    signed_message, CatalogAuthority, CatalogUpdate, PublisherSignature, SignedCatalogUpdate,
};
use ring::signature::{Ed25519KeyPair, KeyPair};
use std::path::{Path, PathBuf};

/// Publisher tooling for catalog (CAP profile) updates: keygen, create, sign, show, check.
#[derive(Parser, Debug)]
#[command(version, about, after_help = AFTER_HELP)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
    /// Print results as JSON.
    #[arg(long, global = true)]
    json: bool,
}

const AFTER_HELP: &str = "A 2-of-3 update, end to end:\n  catalog keygen --out nda.key        # each publisher, once; prints the public key to pin\n  catalog create --fleet-id fleet-a --version 7 --effective-date 2027-01-01T00:00:00Z \\\n    --policy cap-v7.cedar --out v7.catalog\n  catalog sign --key nda.key v7.catalog   # publisher 1\n  catalog sign --key nca.key v7.catalog   # publisher 2\n  catalog check v7.catalog --fleet-id fleet-a --publisher HEX --publisher HEX --publisher HEX\n  # then deliver: the `catalog_update` method through the kernel's host proxy\n\nExit status: 0 success, 1 `check` refused the update, 2 usage or I/O error.";

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Generate a publisher's Ed25519 key (PKCS#8, written with mode 0600) and print its
    /// public key (hex), the value kernels pin with `--catalog-publisher`.
    Keygen {
        /// Where to write the private key.
        #[arg(long)]
        out: PathBuf,
    },
    /// Write an unsigned update from a Cedar policy file.
    Create {
        /// The fleet it is for.
        #[arg(long)]
        fleet_id: String,
        /// Monotone version (above every version the fleet has accepted).
        #[arg(long)]
        version: u64,
        /// Activation instant, RFC 3339 (e.g. 2027-01-01T00:00:00Z).
        #[arg(long)]
        effective_date: String,
        /// The Cedar policy set (CAP profile).
        #[arg(long)]
        policy: PathBuf,
        /// Longest delay allowed between publication and staging on every kernel.
        #[arg(long, default_value_t = 3600)]
        max_propagation_window_seconds: u64,
        /// Where to write the update.
        #[arg(long)]
        out: PathBuf,
    },
    /// Add this publisher's signature to an update file (in place).
    Sign {
        /// The publisher's private key (from `keygen`).
        #[arg(long)]
        key: PathBuf,
        /// The update file.
        file: PathBuf,
    },
    /// Print an update's fields, `cap_profile_hash` and signers.
    Show {
        /// The update file.
        file: PathBuf,
    },
    /// Check an update as a kernel would stage it now (signatures, fleet, date, policy).
    Check {
        /// The update file.
        file: PathBuf,
        /// The fleet the kernels are in.
        #[arg(long)]
        fleet_id: String,
        /// A pinned publisher key (hex; repeat).
        #[arg(long = "publisher", value_name = "HEX", required = true)]
        publishers: Vec<String>,
        /// How many must have signed.
        #[arg(long, default_value_t = 2)]
        threshold: usize,
    },
}

fn main() {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("catalog: {e:#}");
            std::process::exit(2)
        }
    }
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading `{}`", path.display()))
}

fn write(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("writing `{}`", path.display()))
}

fn load(path: &Path) -> anyhow::Result<(SignedCatalogUpdate, CatalogUpdate)> {
    SignedCatalogUpdate::parse(&read(path)?)
        .map_err(|e| anyhow::anyhow!("`{}`: {e}", path.display()))
}

fn print(json: bool, value: &serde_json::Value, text: &str) {
    if json {
        println!("{value}");
    } else {
        println!("{text}");
    }
}

fn run(cli: &Cli) -> anyhow::Result<i32> {
    match &cli.cmd {
        Cmd::Keygen { out } => {
            let pkcs8 = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())
                .map_err(|_| anyhow::anyhow!("key generation failed"))?;
            let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
                .map_err(|_| anyhow::anyhow!("key generation failed"))?;
            {
                use std::io::Write;
                use std::os::unix::fs::OpenOptionsExt;
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(out)
                    .with_context(|| format!("creating `{}`", out.display()))?;
                f.write_all(pkcs8.as_ref())?;
            }
            let public = hex::encode(pair.public_key().as_ref());
            print(
                cli.json,
                &serde_json::json!({"key": out, "public_key": public}),
                &public,
            );
            Ok(0)
        }
        Cmd::Create {
            fleet_id,
            version,
            effective_date,
            policy,
            max_propagation_window_seconds,
            out,
        } => {
            let cap_profile = String::from_utf8(read(policy)?).context("policy is not UTF-8")?;
            enclave::cedar::LoadedPolicies::parse(&cap_profile)
                .map_err(|e| anyhow::anyhow!("`{}`: {e}", policy.display()))?;
            attestation::time::rfc3339_to_unix(effective_date)
                .with_context(|| format!("--effective-date `{effective_date}` is not RFC 3339"))?;
            let update = wire::encode(&CatalogUpdate {
                fleet_id: fleet_id.clone(),
                version: *version,
                effective_date: effective_date.clone(),
                max_propagation_window_seconds: *max_propagation_window_seconds,
                cap_profile,
            })?;
            let signed = SignedCatalogUpdate {
                update,
                signatures: Vec::new(),
            };
            write(out, &signed.encode()?)?;
            print(
                cli.json,
                &serde_json::json!({"file": out, "version": version}),
                &format!("wrote unsigned update v{version} to {}", out.display()),
            );
            Ok(0)
        }
        Cmd::Sign { key, file } => {
            let pair = Ed25519KeyPair::from_pkcs8(&read(key)?)
                .map_err(|_| anyhow::anyhow!("`{}` is not a PKCS#8 Ed25519 key", key.display()))?;
            let (mut signed, update) = load(file)?;
            let public = pair.public_key().as_ref().to_vec();
            signed.signatures.retain(|s| s.public_key != public);
            signed.signatures.push(PublisherSignature {
                public_key: public.clone(),
                signature: pair.sign(&signed_message(&signed.update)).as_ref().to_vec(),
            });
            write(file, &signed.encode()?)?;
            print(
                cli.json,
                &serde_json::json!({"file": file, "version": update.version, "signer": hex::encode(&public), "signatures": signed.signatures.len()}),
                &format!(
                    "signed v{} as {}; {} signature(s)",
                    update.version,
                    hex::encode(&public),
                    signed.signatures.len()
                ),
            );
            Ok(0)
        }
        Cmd::Show { file } => {
            let (signed, update) = load(file)?;
            let hash = hex::encode(attestation::sha256(update.cap_profile.as_bytes()));
            let signers: Vec<String> = signed
                .signatures
                .iter()
                .map(|s| hex::encode(&s.public_key))
                .collect();
            print(
                cli.json,
                &serde_json::json!({"fleet_id": update.fleet_id, "version": update.version,
                    "effective_date": update.effective_date,
                    "max_propagation_window_seconds": update.max_propagation_window_seconds,
                    "cap_profile_hash": hash, "signers": signers}),
                &format!(
                    "fleet {}\nversion {}\neffective {}\ncap_profile_hash {hash}\nsigned by {}",
                    update.fleet_id,
                    update.version,
                    update.effective_date,
                    if signers.is_empty() {
                        "nobody".to_string()
                    } else {
                        signers.join(", ")
                    }
                ),
            );
            Ok(0)
        }
        Cmd::Check {
            file,
            fleet_id,
            publishers,
            threshold,
        } => {
            let keys = publishers
                .iter()
                .map(|p| {
                    hex::decode(p)
                        .ok()
                        .and_then(|b| <[u8; 32]>::try_from(b).ok())
                        .with_context(|| format!("--publisher `{p}` is not 32 bytes of hex"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let authority = CatalogAuthority::new(fleet_id.clone(), keys, *threshold)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            match authority.stage(&read(file)?, attestation::now_ms()) {
                Ok(ack) => {
                    print(
                        cli.json,
                        &serde_json::json!({"stageable": true, "version": ack.version,
                            "effective_at_ms": ack.effective_at_ms,
                            "cap_profile_hash": hex::encode(&ack.cap_profile_hash),
                            "publishers": ack.publishers}),
                        &format!(
                            "ok: v{} would be staged, active from {} ms, signed by {} pinned publishers",
                            ack.version,
                            ack.effective_at_ms,
                            ack.publishers.len()
                        ),
                    );
                    Ok(0)
                }
                Err(e) => {
                    print(
                        cli.json,
                        &serde_json::json!({"stageable": false, "reason": e.to_string()}),
                        &format!("refused: {e}"),
                    );
                    Ok(1)
                }
            }
        }
    }
}
