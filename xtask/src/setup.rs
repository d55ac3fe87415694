//! Installs what the demo and the tests need on a fresh Debian machine, when it is missing.

use anyhow::{bail, Context};
use std::process::Command;

/// Debian packages the project needs at build or run time.
pub const APT_PACKAGES: &[&str] = &[
    "swtpm",
    "swtpm-tools",
    "tpm2-tools",
    "libtss2-dev",
    "pkg-config",
    // Measurements and the guest image (issue 5): real OVMF, the sev-snp-measure peer's
    // venv, QEMU for the boot test, busybox for its probe initramfs, binutils to strip.
    "ovmf",
    "python3-venv",
    "qemu-system-x86",
    "busybox-static",
    "binutils",
];

fn have(cmd: &str, args: &[&str]) -> bool {
    Command::new(cmd)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Whether every package in `packages` is installed (`dpkg-query` status).
fn all_installed(packages: &[&str]) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f", "${Status}\n"])
        .args(packages)
        .output()
        .map(|o| {
            let text = String::from_utf8_lossy(&o.stdout);
            o.status.success()
                && text.lines().count() == packages.len()
                && text.lines().all(|l| l.ends_with(" installed"))
        })
        .unwrap_or(false)
}

/// Ensures every package of [`APT_PACKAGES`] is present.
pub fn ensure_packages() -> anyhow::Result<()> {
    let ok = have("swtpm", &["--version"])
        && have(
            "pkg-config",
            &["--exists", "tss2-esys", "tss2-tctildr", "tss2-mu"],
        )
        && all_installed(APT_PACKAGES);
    if ok {
        return Ok(());
    }
    eprintln!("xtask: installing {} (apt-get)", APT_PACKAGES.join(" "));
    let sudo: &[&str] = if is_root() { &[] } else { &["sudo", "-n"] };
    let run = |args: &[&str]| -> anyhow::Result<()> {
        let mut all: Vec<&str> = sudo.to_vec();
        all.extend_from_slice(args);
        let (prog, rest) = all.split_first().context("empty command")?;
        let status = Command::new(prog)
            .args(rest)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .with_context(|| format!("running {}", all.join(" ")))?;
        if !status.success() {
            bail!(
                "`{}` failed; install these packages yourself: {}",
                all.join(" "),
                APT_PACKAGES.join(" ")
            );
        }
        Ok(())
    };
    run(&["apt-get", "update", "-q"])?;
    let mut install = vec!["apt-get", "install", "-y", "-q", "--no-install-recommends"];
    install.extend_from_slice(APT_PACKAGES);
    run(&install)?;
    if !have("swtpm", &["--version"]) {
        bail!("swtpm is still missing after apt-get install");
    }
    Ok(())
}

/// Peer tools the benchmarks compare against, installed into `target/peer-tools` (best
/// effort: a missing peer leaves its ratio out and says so). `snpguest` needs OpenSSL's
/// development files.
pub fn ensure_peer_tools(target: &std::path::Path) {
    // nv-local-gpu-verifier (gpu-attest/benches/peer) runs offline under libfaketime in a
    // python venv; snpguest builds against OpenSSL.
    let mut missing: Vec<&str> = Vec::new();
    if !have("faketime", &["--version"]) {
        missing.push("faketime");
    }
    if !have("python3", &["-c", "import venv, ensurepip"]) {
        missing.push("python3-venv");
    }
    if !have("pkg-config", &["--exists", "openssl"]) {
        missing.push("libssl-dev");
    }
    if !missing.is_empty() {
        let sudo: &[&str] = if is_root() { &[] } else { &["sudo", "-n"] };
        let mut args: Vec<&str> = sudo.to_vec();
        args.extend_from_slice(&["apt-get", "install", "-y", "-q", "--no-install-recommends"]);
        args.extend_from_slice(&missing);
        eprintln!(
            "xtask: installing {} for the peer comparisons",
            missing.join(" ")
        );
        if let Some((prog, rest)) = args.split_first() {
            let _ = Command::new(prog)
                .args(rest)
                .env("DEBIAN_FRONTEND", "noninteractive")
                .status();
        }
    }
    if target.join("peer-tools/bin/snpguest").exists() {
        return;
    }
    eprintln!("xtask: installing snpguest (cargo install) for the snpguest_speedup peer figure");
    let root = target.join("peer-tools");
    let ok = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["install", "snpguest", "--locked", "--root"])
        .arg(&root)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        eprintln!("xtask: snpguest could not be installed; snpguest_speedup will be missing");
    }
}

/// Tools from crates.io the image boot test and bench need, installed into `target/tools`:
/// `vhost-device-vsock` (rust-vmm), the vhost-user backend that bridges the guest's
/// virtio-vsock to a hybrid-vsock Unix socket without the host's vsock kernel modules.
pub fn ensure_tools(target: &std::path::Path) -> anyhow::Result<()> {
    let root = target.join("tools");
    if root.join("bin/vhost-device-vsock").exists() {
        return Ok(());
    }
    eprintln!("xtask: installing vhost-device-vsock (cargo install) for the image boot test");
    let ok = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["install", "vhost-device-vsock", "--locked", "--root"])
        .arg(&root)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        bail!(
            "`cargo install vhost-device-vsock --locked --root {}` failed",
            root.display()
        );
    }
    Ok(())
}
