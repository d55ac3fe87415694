//! The `host` binary as a process: argv output of `launch`, and `proxy` under SIGTERM.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test helpers outside #[test] functions: a failed unwrap is a failed test"
)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const HOST: &str = env!("CARGO_BIN_EXE_host");

fn wait_for(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn launch_prints_argv_as_json() {
    let out = Command::new(HOST)
        .args([
            "launch",
            "--mode",
            "sev-snp",
            "--kernel",
            "/img/vmlinuz",
            "--initrd",
            "/img/initrd",
            "--cid",
            "5",
            "--tpm-sock",
            "/run/swtpm.sock",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let argv: Vec<String> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(argv[0], "qemu-system-x86_64");
    assert!(argv.iter().any(|a| a.starts_with("sev-snp-guest,id=sev0")));
    assert!(argv
        .iter()
        .any(|a| a.starts_with("vhost-vsock-pci,guest-cid=5")));
}

#[test]
fn launch_refuses_a_reserved_cid() {
    let out = Command::new(HOST)
        .args([
            "launch",
            "--mode",
            "dev",
            "--kernel",
            "k",
            "--initrd",
            "i",
            "--cid",
            "2",
            "--tpm-sock",
            "t",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("reserved"));
}

#[test]
fn proxy_runs_until_sigterm_and_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    let public = dir.path().join("public.sock");
    let enclave = dir.path().join("enclave.sock");
    let metrics = dir.path().join("metrics.json");
    let child = Command::new(HOST)
        .arg("proxy")
        .arg(format!("--listen=unix:{}", public.display()))
        .arg(format!("--enclave=hybrid:{}:5000", enclave.display()))
        .arg("--egress=5100=tcp:127.0.0.1:9")
        .arg(format!("--metrics-file={}", metrics.display()))
        .arg("--json")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let egress = wire::hybrid::guest_initiated_path(&enclave, 5100);
    wait_for("sockets and metrics file", || {
        public.exists() && egress.exists() && metrics.exists()
    });

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let last: host::MetricsSnapshot = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(last, Default::default());
    for gone in [&public, &egress] {
        assert!(!Path::new(gone).exists(), "{} left behind", gone.display());
    }
}
