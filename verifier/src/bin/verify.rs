//! `verify`: offline verification for resource providers and auditors.
//!
//! Evidence: `verify snp|tdx|tpm|bundle` (real vendor evidence with vendor roots pinned in the
//! binary and collateral from files); kernel artefacts: `verify manifest|signature`; audit
//! packages: `verify audit --package DIR [--ale SEQ]`.
//!
//! Exit codes: 0 affirming / verified, 1 not affirming (a contraindicated claim; the report
//! says which check failed), 2 bad usage or unreadable input. `--json` prints the EAR-shaped
//! result with a reason per check (see docs/verify.md).

use anyhow::Context;
use attestation::reference::ReferenceValues;
use attestation::snp::endorser::Product;
use attestation::verdict::Verdict;
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use verifier::evidence;

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
    /// Reference values JSON (docs/reference-values.md).
    #[arg(long, global = true)]
    reference: Option<PathBuf>,
    /// Expected report data / qualifying data / bundle nonce, hex.
    #[arg(long, global = true)]
    nonce: Option<String>,
    /// Verification time (RFC 3339) for certificate and collateral windows; default: now.
    #[arg(long, global = true)]
    now: Option<String>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Verify an AMD SEV-SNP attestation report with its VCEK/VLEK against the pinned AMD roots.
    Snp {
        /// The 1184-byte report (binary).
        #[arg(long)]
        report: PathBuf,
        /// The VCEK or VLEK certificate (DER or PEM).
        #[arg(long)]
        vek: PathBuf,
        /// ASK/ASVK + ARK bundle (PEM); must be AMD's pinned certificates, selects the product.
        #[arg(long)]
        ca: Option<PathBuf>,
        /// milan, genoa or turin (inferred from the VEK's chain when absent).
        #[arg(long)]
        product: Option<Product>,
    },
    /// Verify an Intel TDX quote (v4/v5) with collateral against the pinned Intel SGX root.
    Tdx {
        /// The quote (binary, or hex text).
        #[arg(long)]
        quote: PathBuf,
        /// Collateral JSON (PCK CRL, root CA CRL, TCB info, QE identity, issuer chains); without
        /// it only the chain and signatures are checked and the TCB is not evaluated.
        #[arg(long)]
        collateral: Option<PathBuf>,
    },
    /// Verify a TPM 2.0 quote: signature with the AK, qualifying data, PCR digest, PCRs.
    Tpm {
        /// Evidence file: this project's TpmEvidence (CBOR) or trustee's tpm_evidence.json.
        #[arg(long, conflicts_with_all = ["quote", "signature", "ak_pub", "pcrs"])]
        evidence: Option<PathBuf>,
        /// TPMS_ATTEST (binary).
        #[arg(long, requires_all = ["signature", "ak_pub", "pcrs"])]
        quote: Option<PathBuf>,
        /// TPMT_SIGNATURE (binary), or a bare RSASSA-SHA256 signature for an RSA AK.
        #[arg(long)]
        signature: Option<PathBuf>,
        /// The AK: TPMT_PUBLIC (binary) or RSA SubjectPublicKeyInfo (PEM/DER).
        #[arg(long)]
        ak_pub: Option<PathBuf>,
        /// PCR values: `N: HEX` lines or JSON.
        #[arg(long)]
        pcrs: Option<PathBuf>,
        /// TCG2 crypto-agile event log (binary_bios_measurements) to replay against the quote.
        #[arg(long)]
        eventlog: Option<PathBuf>,
    },
    /// Verify an NVIDIA GPU's attestation report (SPDM GET_MEASUREMENTS) with its device chain
    /// and RIMs; `--nonce` (32 bytes) is required.
    Gpu {
        /// The report as hex text (as NVML tools print it).
        #[arg(long)]
        report: PathBuf,
        /// The device certificate chain (PEM, leaf first).
        #[arg(long)]
        chain: PathBuf,
        /// Driver and VBIOS RIMs (SWID XML), repeatable.
        #[arg(long)]
        rim: Vec<PathBuf>,
        /// GPU policy JSON (allowed/minimum driver and VBIOS versions, require_rims).
        #[arg(long)]
        policy: Option<PathBuf>,
        /// Do not require RIMs (report, chain, nonce and versions only).
        #[arg(long)]
        no_rims_required: bool,
    },
    /// Verify this project's own evidence bundle (COSE_Sign1) and every item in it.
    Bundle {
        /// The bundle (CBOR COSE_Sign1).
        file: PathBuf,
        /// TDX collateral JSON, for bundles carrying a TDX quote.
        #[arg(long)]
        tdx_collateral: Option<PathBuf>,
    },
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
    /// Check a kernel's exported audit package (KEE-1 P7 Governance Audit Record): the ALE
    /// chain, every session block's RFC 9162 Merkle root, the previous-root links, every
    /// block's FROST group signature (Ed25519) and, with `--ale`, that ALE's inclusion proof.
    Audit {
        /// The package directory (manifest.json, ales.cbor, blocks.cbor, signatures.cbor,
        /// group_public_key.hex).
        #[arg(long)]
        package: PathBuf,
        /// Prove this ALE (sequence number) is in its block.
        #[arg(long)]
        ale: Option<u64>,
        /// Pin the group public key (hex or a file holding it) instead of trusting the
        /// package's copy.
        #[arg(long)]
        group_public_key: Option<String>,
    },
    /// Check an ACD Record (KEE-1 P3) as a kernel returned it (`acd_issue`, CBOR): the
    /// verifier-signed result, the attestation key it names, that key's signature over the
    /// record, all four checks passed, not expired; `--nonce` pins the resource provider's
    /// nonce.
    Acd {
        /// The CBOR answer (`AcdInfo`).
        #[arg(long)]
        record: PathBuf,
        /// The verifier's result-signing public key (hex, or a file holding it).
        #[arg(long)]
        verifier_public_key: String,
    },
    /// Check a countersigned PEER Transaction Record (CBOR `PeerRecordInfo`): the `ptxn_id`
    /// re-derived from the record's fields, and the responder's countersignature under the
    /// attestation key its verifier-signed result names.
    Ptr {
        /// The CBOR answer (`PeerRecordInfo`).
        #[arg(long)]
        record: PathBuf,
        /// The verifier's result-signing public key (hex, or a file holding it).
        #[arg(long)]
        verifier_public_key: String,
    },
    /// Derive an XPID / `ptxn_id` (UUID-v5 under the SOOS namespace) from its five fields.
    Xpid {
        /// Initiating KIA id.
        #[arg(long)]
        initiating_kia_id: String,
        /// Responding KIA id.
        #[arg(long)]
        responding_kia_id: String,
        /// RFC 3339 UTC with milliseconds.
        #[arg(long)]
        initiated_at: String,
        /// Initiator's nonce (lowercase hex).
        #[arg(long)]
        initiating_nonce: String,
        /// Responder's nonce (lowercase hex).
        #[arg(long)]
        responding_nonce: String,
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

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading `{}`", path.display()))
}

fn print_verdict(v: &Verdict, json: bool) -> anyhow::Result<bool> {
    if json {
        println!("{}", serde_json::to_string_pretty(v)?);
    } else {
        println!("{} evidence: {}", v.evidence, v.status.as_str());
        for c in &v.checks {
            println!("  [{:<15}] {:<22} {}", c.tier.as_str(), c.check, c.reason);
        }
        for (k, m) in &v.measured {
            println!("  {k} = {m}");
        }
    }
    Ok(v.affirming())
}

fn now_unix(now: Option<&str>) -> anyhow::Result<u64> {
    match now {
        Some(s) => {
            let t = attestation::time::rfc3339_to_unix(s)
                .with_context(|| format!("--now `{s}` is not an RFC 3339 time"))?;
            u64::try_from(t).context("--now is before 1970")
        }
        None => Ok(attestation::now_ms() / 1000),
    }
}

fn run() -> anyhow::Result<bool> {
    let cli = Cli::parse();
    let reference = match &cli.reference {
        Some(p) => ReferenceValues::from_json(&read(p)?)?,
        None => ReferenceValues::default(),
    };
    let nonce = cli
        .nonce
        .as_deref()
        .map(evidence::hex_arg)
        .transpose()
        .context("--nonce")?;
    let now = now_unix(cli.now.as_deref())?;
    match cli.cmd {
        Cmd::Snp {
            report,
            vek,
            ca,
            product,
        } => {
            let ca = ca.as_deref().map(read).transpose()?;
            let v = evidence::snp(
                &read(&report)?,
                &read(&vek)?,
                ca.as_deref(),
                product,
                &reference,
                nonce.as_deref(),
            )?;
            print_verdict(&v, cli.json)
        }
        Cmd::Tdx { quote, collateral } => {
            let collateral = collateral
                .as_deref()
                .map(|p| {
                    attestation::tdx::Collateral::from_json(&read(p)?).map_err(anyhow::Error::from)
                })
                .transpose()?;
            let verifier = attestation::tdx::TdxVerifier::default();
            let v = evidence::tdx(
                &verifier,
                &read(&quote)?,
                collateral.as_ref(),
                now,
                &reference,
                nonce.as_deref(),
            );
            print_verdict(&v, cli.json)
        }
        Cmd::Tpm {
            evidence: file,
            quote,
            signature,
            ak_pub,
            pcrs,
            eventlog,
        } => {
            let log = eventlog.as_deref().map(read).transpose()?;
            let input = match (file, quote, signature, ak_pub, pcrs) {
                (Some(f), ..) => evidence::tpm_evidence_file(&read(&f)?)?,
                (None, Some(q), Some(s), Some(a), Some(p)) => {
                    let ak = evidence::ak_file(&read(&a)?)?;
                    evidence::TpmInput {
                        attest: read(&q)?,
                        signature: evidence::tpm_signature(&read(&s)?, &ak),
                        ak,
                        pcrs: evidence::pcrs_file(&read(&p)?)?,
                    }
                }
                _ => anyhow::bail!(
                    "give --evidence FILE, or all of --quote, --signature, --ak-pub and --pcrs"
                ),
            };
            print_verdict(
                &evidence::tpm_with_log(&input, &reference, nonce.as_deref(), log.as_deref()),
                cli.json,
            )
        }
        Cmd::Gpu {
            report,
            chain,
            rim,
            policy,
            no_rims_required,
        } => {
            let nonce: [u8; 32] = nonce
                .as_deref()
                .context("verify gpu needs --nonce (32 bytes, hex)")?
                .try_into()
                .map_err(|_| anyhow::anyhow!("--nonce must be 32 bytes for a gpu report"))?;
            let mut policy: gpu_attest::GpuPolicy = match policy {
                Some(p) => serde_json::from_slice(&read(&p)?).context("--policy")?,
                None => gpu_attest::GpuPolicy::default(),
            };
            if no_rims_required {
                policy.require_rims = false;
            }
            let rims = rim
                .iter()
                .map(|p| read(p))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let report = String::from_utf8(read(&report)?).context("--report is not hex text")?;
            let chain = String::from_utf8(read(&chain)?).context("--chain is not PEM text")?;
            let v = evidence::gpu(
                &report,
                &chain,
                &nonce,
                &rims,
                &policy,
                i64::try_from(now).unwrap_or(i64::MAX),
            );
            print_verdict(&v, cli.json)
        }
        Cmd::Bundle {
            file,
            tdx_collateral,
        } => {
            let collateral = tdx_collateral
                .as_deref()
                .map(|p| {
                    attestation::tdx::Collateral::from_json(&read(p)?).map_err(anyhow::Error::from)
                })
                .transpose()?;
            let v = evidence::bundle(
                &read(&file)?,
                &reference,
                nonce.as_deref(),
                collateral.as_ref(),
                now,
            );
            print_verdict(&v, cli.json)
        }
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
        Cmd::Audit {
            package,
            ale,
            group_public_key,
        } => {
            if !package.is_dir() {
                anyhow::bail!("no audit package directory at `{}`", package.display());
            }
            let pinned = group_public_key.as_deref().map(key_arg).transpose()?;
            let report = verifier::offline::verify_audit_package(&package, ale, pinned.as_deref())
                .context("reading the audit package")?;
            if cli.json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                println!(
                    "audit package of kernel `{}`: {} ALEs, {} blocks",
                    report.kernel_id, report.ales, report.blocks
                );
                for c in &report.checks {
                    println!(
                        "  [{}] {}: {}",
                        if c.ok { "ok" } else { "FAIL" },
                        c.check,
                        c.detail
                    );
                }
                if let Some(p) = &report.inclusion {
                    println!(
                        "  ALE {} in block {} (trace id {}): leaf {} of {}, root {}",
                        p.seq, p.height, p.block_id, p.leaf_index, p.tree_size, p.root
                    );
                    for h in &p.audit_path {
                        println!("    {h}");
                    }
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
        Cmd::Acd {
            record,
            verifier_public_key,
        } => {
            let info: wire::msg::AcdInfo =
                wire::decode(&read(&record)?).context("the file is not an acd_issue answer")?;
            let nonce = cli
                .nonce
                .as_deref()
                .map(|n| hex::decode(n.trim()))
                .transpose()
                .context("--nonce is not hex")?;
            let now = now_ms(cli.now.as_deref())?;
            let v = attestation::acd::verify_acd(
                &info,
                &key_arg(&verifier_public_key)?,
                now,
                nonce.as_deref(),
            );
            record_report(
                "acd record",
                v.map(|v| serde_json::to_value(&v.record)),
                cli.json,
            )
        }
        Cmd::Ptr {
            record,
            verifier_public_key,
        } => {
            let info: wire::msg::PeerRecordInfo = wire::decode(&read(&record)?)
                .context("the file is not a peer_transaction answer")?;
            let now = now_ms(cli.now.as_deref())?;
            let v = attestation::acd::verify_ptr(&info, &key_arg(&verifier_public_key)?, now);
            record_report(
                "peer transaction record",
                v.map(|v| serde_json::to_value(&v.ptr)),
                cli.json,
            )
        }
        Cmd::Xpid {
            initiating_kia_id,
            responding_kia_id,
            initiated_at,
            initiating_nonce,
            responding_nonce,
        } => {
            let x = wire::xpid::derive(&wire::xpid::XpidInput {
                initiating_kia_id: &initiating_kia_id,
                responding_kia_id: &responding_kia_id,
                initiated_at: &initiated_at,
                initiating_nonce: &initiating_nonce,
                responding_nonce: &responding_nonce,
            })?;
            if cli.json {
                println!("{}", serde_json::json!({ "xpid": x.to_string() }));
            } else {
                println!("{x}");
            }
            Ok(true)
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

fn now_ms(now: Option<&str>) -> anyhow::Result<u64> {
    match now {
        None => Ok(attestation::now_ms()),
        Some(_) => Ok(now_unix(now)?.saturating_mul(1000)),
    }
}

/// Prints a record check; `Ok(true)` when it verified.
fn record_report(
    what: &str,
    v: Result<serde_json::Result<serde_json::Value>, attestation::acd::RecordError>,
    json: bool,
) -> anyhow::Result<bool> {
    match v {
        Ok(record) => {
            let record = record?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({ "verified": true, "record": record })
                );
            } else {
                println!(
                    "{what} verified\n{}",
                    serde_json::to_string_pretty(&record)?
                );
            }
            Ok(true)
        }
        Err(e) => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({ "verified": false, "reason": e.to_string() })
                );
            } else {
                println!("{what} NOT verified: {e}");
            }
            Ok(false)
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
