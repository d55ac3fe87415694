//! `verifier`: the relying-party service and the key ceremony.

use anyhow::Context;
use attestation::appraisal::AppraisalPolicy;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::sync::Arc;

/// Relying party and key broker for governance kernels.
///
/// Exit codes: 0 success, 1 failure (the message says which check or file, or which kernel is
/// not registered), 2 usage error.
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
        /// Serve TLS only: refuse connections that do not open with a TLS handshake (kernels
        /// always use TLS; plaintext frames are for tools on a trusted host).
        #[arg(long)]
        require_tls: bool,
        /// Write the result-signing public key (hex) here once listening.
        #[arg(long)]
        public_key_out: Option<PathBuf>,
        /// Re-attestation: time between challenges of one kernel (ms).
        #[arg(long, default_value_t = 60_000)]
        interval_ms: u64,
        /// Re-attestation: random spread of each interval (percent, 0-50).
        #[arg(long, default_value_t = 10)]
        jitter_pct: u8,
        /// Re-attestation: consecutive missed challenges that revoke a kernel.
        #[arg(long, default_value_t = 3)]
        grace: u32,
        /// Re-attestation: time a kernel has to answer one challenge (ms).
        #[arg(long, default_value_t = 10_000)]
        challenge_timeout_ms: u64,
        /// Re-attestation: longest a kernel's `watch` is held without news (ms); below the
        /// host proxy's 30 s response timeout and the kernels' feed timeout.
        #[arg(long, default_value_t = 10_000)]
        hold_ms: u64,
        /// How often missed challenges, revocation deadlines and operator commands are
        /// looked at (ms).
        #[arg(long, default_value_t = 1_000)]
        sweep_ms: u64,
    },
    /// List every registered kernel with its attestation state.
    Kernels {
        /// SQLite state file.
        #[arg(long)]
        db: PathBuf,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// One kernel's state, attestation key, latest appraisals, history and revocations (with
    /// their KEE-1 P8 completion state: clean, partial, unknown).
    Status {
        /// Kernel id.
        id: String,
        /// SQLite state file.
        #[arg(long)]
        db: PathBuf,
        /// Entries of each list to show.
        #[arg(long, default_value_t = 10)]
        limit: u32,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a kernel and hold it: its signing group stops trusting it, no wrap key is
    /// released to it, and it stops signing, until `admit` and a fresh affirming result.
    /// Applied by the running service within one sweep (or at its next start).
    Revoke {
        /// Kernel id.
        id: String,
        /// SQLite state file.
        #[arg(long)]
        db: PathBuf,
        /// Why (recorded in the registry and the revocation).
        #[arg(long, default_value = "revoked by an operator")]
        reason: String,
        /// Wait this long for the running service to apply it (ms; 0 = do not wait).
        #[arg(long, default_value_t = 5_000)]
        wait_ms: u64,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a KIA id or an agent XPID fleet-wide (KEE-1 P3 checks 3-4, P8): every kernel
    /// learns it on its feed, then refuses ACD records and PEER transactions naming it and
    /// denies the XPID's decisions. Applied by the running service within one sweep; its
    /// propagation is tracked to `clean`, `partial` or `unknown` (`verifier revocations`).
    RevokeIdentity {
        /// A KIA id to revoke.
        #[arg(long, conflicts_with = "xpid", required_unless_present = "xpid")]
        kia: Option<String>,
        /// An agent XPID (UUID) to revoke.
        #[arg(long)]
        xpid: Option<String>,
        /// SQLite state file.
        #[arg(long)]
        db: PathBuf,
        /// Why.
        #[arg(long, default_value = "revoked by an operator")]
        reason: String,
        /// Wait this long for the running service to settle its propagation (ms; 0 = do
        /// not wait).
        #[arg(long, default_value_t = 0)]
        wait_ms: u64,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Every revocation (kernels, KIA ids, XPIDs) with its KEE-1 P8 completion state, and
    /// every revoked identity.
    Revocations {
        /// SQLite state file.
        #[arg(long)]
        db: PathBuf,
        /// Most revocations listed.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Lift an operator hold; the kernel is reinstated only by a fresh affirming result.
    Admit {
        /// Kernel id.
        id: String,
        /// SQLite state file.
        #[arg(long)]
        db: PathBuf,
        /// Why.
        #[arg(long, default_value = "admitted by an operator")]
        reason: String,
        /// Wait this long for the running service to apply it (ms; 0 = do not wait).
        #[arg(long, default_value_t = 5_000)]
        wait_ms: u64,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Re-attestation metrics the running service last wrote: appraisals/s, failures by
    /// reason, missed challenges, revocations and their propagation time.
    Metrics {
        /// SQLite state file.
        #[arg(long)]
        db: PathBuf,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Plan a distributed key generation among freshly booted kernels (production path):
    /// registers a fresh wrap key per kernel and writes a verifier-signed plan
    /// (`ceremony_plan.cbor`: threshold, signers) into each kernel's state directory. The
    /// kernels run the DKG among themselves once attested and seal their own shares.
    Dkg {
        /// SQLite state file.
        #[arg(long)]
        db: PathBuf,
        /// Appraisal policy (its reference values bind the sealed shares).
        #[arg(long)]
        policy: PathBuf,
        /// Threshold t (at least 2).
        #[arg(long, default_value_t = 2)]
        threshold: u16,
        /// Signers n.
        #[arg(long, default_value_t = 3)]
        signers: u16,
        /// Kernel ids (default k1..kn).
        #[arg(long = "kernel")]
        kernels: Vec<String>,
        /// Directory holding one state directory per kernel.
        #[arg(long)]
        state_root: PathBuf,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Plan a refresh of every share of a group (same group key and threshold, new shares):
    /// writes a verifier-signed refresh plan for each signer; restarted kernels run it.
    Refresh {
        /// SQLite state file.
        #[arg(long)]
        db: PathBuf,
        /// Any kernel of the group (its sealed share names the signers).
        #[arg(long)]
        kernel: String,
        /// Directory holding one state directory per kernel.
        #[arg(long)]
        state_root: PathBuf,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Plan the repair of one signer's share (a replaced kernel under the same id whose state
    /// is lost) by exactly t helpers (`frost-ed25519` `keys::repairable`): same group key,
    /// same threshold; registers a fresh wrap key for it. Restart the helpers and start the
    /// replaced kernel to run it.
    Repair {
        /// SQLite state file.
        #[arg(long)]
        db: PathBuf,
        /// The signer whose share is rebuilt.
        #[arg(long)]
        participant: String,
        /// A helping signer (repeat exactly t times).
        #[arg(long = "helper")]
        helpers: Vec<String>,
        /// Directory holding one state directory per kernel.
        #[arg(long)]
        state_root: PathBuf,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Development only: a trusted dealer generates a FROST t-of-n key, seals one share per
    /// kernel and registers the wrap keys (this process sees every share; use `dkg` in
    /// production).
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

/// Opens a database that must already exist (operator verbs never create one).
fn open_existing(db: &std::path::Path) -> anyhow::Result<verifier::Store> {
    if !db.is_file() {
        anyhow::bail!("no verifier database at `{}`", db.display());
    }
    verifier::Store::open(db).with_context(|| format!("opening `{}`", db.display()))
}

fn operator(
    db: &std::path::Path,
    id: &str,
    what: &str,
    reason: &str,
    wait_ms: u64,
    json: bool,
) -> anyhow::Result<()> {
    let store = open_existing(db)?;
    let cmd = verifier::ops::request(&store, id, what, reason)?;
    let cmd =
        verifier::ops::wait_applied(&store, cmd.id, std::time::Duration::from_millis(wait_ms))?
            .unwrap_or(cmd);
    if json {
        println!("{}", serde_json::to_string(&cmd)?);
    } else {
        match (&cmd.applied_at_ms, &cmd.outcome) {
            (Some(at), Some(outcome)) => println!("{what} {id}: {outcome} (applied at {at})"),
            _ => println!(
                "{what} {id}: queued as command {}; no running verifier applied it yet (it is applied within one sweep, or when the service next starts)",
                cmd.id
            ),
        }
    }
    Ok(())
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
            require_tls,
            public_key_out,
            interval_ms,
            jitter_pct,
            grace,
            challenge_timeout_ms,
            hold_ms,
            sweep_ms,
        } => {
            let policy = load_policy(&policy)?;
            let monitor = verifier::MonitorConfig {
                interval_ms,
                jitter_pct,
                grace,
                challenge_timeout_ms,
                hold_ms,
                sweep_ms,
                ..verifier::MonitorConfig::default()
            };
            let store =
                Arc::new(verifier::Store::open(&db).context("opening the verifier database")?);
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(async move {
                let handle = verifier::serve_with(
                    verifier::ServiceConfig {
                        listen,
                        policy,
                        require_tls,
                    },
                    monitor,
                    store,
                )
                .await?;
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
        Cmd::Dkg {
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
            let signer = verifier::service::load_signer(&store)?;
            let out = verifier::ceremony::plan_dkg(
                &store,
                &policy,
                &signer,
                threshold,
                &kernels,
                &state_root,
            )?;
            print_plan(&out, json)
        }
        Cmd::Refresh {
            db,
            kernel,
            state_root,
            json,
        } => {
            let store = open_existing(&db)?;
            let signer = verifier::service::load_signer(&store)?;
            let out = verifier::ceremony::plan_refresh(&store, &signer, &kernel, &state_root)?;
            print_plan(&out, json)
        }
        Cmd::Repair {
            db,
            participant,
            helpers,
            state_root,
            json,
        } => {
            let store = open_existing(&db)?;
            let signer = verifier::service::load_signer(&store)?;
            let out = verifier::ceremony::plan_repair(
                &store,
                &signer,
                &participant,
                &helpers,
                &state_root,
            )?;
            print_plan(&out, json)
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
        Cmd::Kernels { db, json } => {
            let store = open_existing(&db)?;
            let records = verifier::ops::kernels(&store)?;
            if json {
                println!("{}", serde_json::json!({ "kernels": records }));
            } else {
                print!("{}", verifier::ops::render_kernels(&records));
            }
            Ok(())
        }
        Cmd::Status {
            id,
            db,
            limit,
            json,
        } => {
            let store = open_existing(&db)?;
            let view = verifier::ops::status(&store, &id, limit)?;
            if json {
                println!("{}", serde_json::to_string(&view)?);
            } else {
                print!("{}", verifier::ops::render_status(&view));
            }
            Ok(())
        }
        Cmd::Revoke {
            id,
            db,
            reason,
            wait_ms,
            json,
        } => operator(
            &db,
            &id,
            verifier::registry::action::REVOKE,
            &reason,
            wait_ms,
            json,
        ),
        Cmd::RevokeIdentity {
            kia,
            xpid,
            db,
            reason,
            wait_ms,
            json,
        } => {
            let store = open_existing(&db)?;
            let (kind, subject) = match (kia, xpid) {
                (Some(k), _) => (verifier::registry::IdentityKind::Kia, k),
                (None, Some(x)) => (verifier::registry::IdentityKind::Xpid, x),
                (None, None) => anyhow::bail!("give --kia ID or --xpid UUID"),
            };
            let r = verifier::ops::revoke_identity(
                &store,
                kind,
                &subject,
                &reason,
                std::time::Duration::from_millis(wait_ms),
            )?;
            if json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                println!(
                    "{} `{}` revoked ({}); propagation: {}",
                    r.kind.as_str(),
                    r.subject,
                    r.reason,
                    r.completion
                        .as_deref()
                        .unwrap_or("not yet picked up by the service")
                );
            }
            Ok(())
        }
        Cmd::Revocations { db, limit, json } => {
            let store = open_existing(&db)?;
            let v = verifier::ops::revocations(&store, limit)?;
            if json {
                println!("{}", serde_json::to_string(&v)?);
            } else {
                print!("{}", verifier::ops::render_revocations(&v));
            }
            Ok(())
        }
        Cmd::Admit {
            id,
            db,
            reason,
            wait_ms,
            json,
        } => operator(
            &db,
            &id,
            verifier::registry::action::ADMIT,
            &reason,
            wait_ms,
            json,
        ),
        Cmd::Metrics { db, json } => {
            let store = open_existing(&db)?;
            let m = verifier::ops::metrics(&store)?;
            match (m, json) {
                (Some(m), true) => println!("{}", serde_json::to_string(&m)?),
                (None, true) => println!("{}", serde_json::json!({ "metrics": null })),
                (Some(m), false) => {
                    println!("at: {} (uptime {:.0} s)", m.at_ms, m.uptime_s);
                    println!(
                        "appraisals: {} total, {} answering challenges, {} affirming, {:.1}/s",
                        m.appraisals_total,
                        m.challenge_appraisals_total,
                        m.affirming_total,
                        m.appraisals_per_s
                    );
                    println!("failures by reason: {:?}", m.failures_by_reason);
                    println!("missed challenges: {}", m.missed_challenges_total);
                    println!(
                        "revocations: {} ({} reinstated); completion {:?}",
                        m.revocations_total, m.reinstatements_total, m.revocation_completion
                    );
                    let p = &m.revocation_propagation;
                    println!(
                        "revocation propagation: {} acknowledgements, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
                        p.samples, p.p50_ms, p.p99_ms, p.max_ms
                    );
                    println!(
                        "kernels by state: {:?}; watching: {}",
                        m.kernels_by_state, m.watching
                    );
                }
                (None, false) => {
                    println!("no metrics yet: the service writes them every 5 s while it runs")
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

fn print_plan(out: &verifier::ceremony::PlanOutput, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(out)?);
    } else {
        println!(
            "ceremony {} ({}): frost:t-of-n:{}-{}",
            out.ceremony_id, out.mode, out.threshold, out.signers
        );
        if !out.group_public_key.is_empty() {
            println!("group public key (unchanged): {}", out.group_public_key);
        }
        for (k, p) in &out.plans {
            println!("  {k}: signed plan at {}", p.display());
        }
        println!("start (or restart) the kernels to run it; `manifest` then shows the group key");
    }
    Ok(())
}
