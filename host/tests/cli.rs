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

/// An image directory with placeholder files (a dry run does not boot them).
fn placeholder_image() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("vmlinuz"), b"kernel").unwrap();
    std::fs::write(dir.path().join("initrd.img"), b"initrd").unwrap();
    std::fs::write(
        dir.path().join("cmdline"),
        "console=ttyS0 panic=-1 rdinit=/init\n",
    )
    .unwrap();
    dir
}

#[test]
fn launch_dry_run_prints_argv_as_json() {
    let image = placeholder_image();
    let root = tempfile::tempdir().unwrap();
    let out = Command::new(HOST)
        .args([
            "launch",
            "--kernel-id",
            "k1",
            "--platform",
            "snp",
            "--vcpus",
            "4",
        ])
        .args([
            "--memory",
            "4G",
            "--cid",
            "5",
            "--dry-run",
            "--json",
            "--image",
        ])
        .arg(image.path())
        .arg("--state-root")
        .arg(root.path())
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
    assert!(argv.iter().any(|a| a == "4096M"));
    assert!(argv
        .iter()
        .any(|a| a == "console=ttyS0 panic=-1 rdinit=/init"));
    assert!(argv
        .iter()
        .any(|a| a.starts_with("vhost-vsock-pci,guest-cid=5")));
    // The kernel's own state directory holds its swtpm and QMP sockets.
    let k1 = root.path().join("k1");
    assert!(argv
        .iter()
        .any(|a| a.contains(&format!("path={}", k1.join("swtpm.sock").display()))));
    assert!(argv
        .iter()
        .any(|a| a.contains(&*k1.join("qmp.sock").to_string_lossy())));
    // A dry run starts and creates nothing.
    assert!(!k1.exists());
}

#[test]
fn launch_refuses_a_reserved_cid() {
    let image = placeholder_image();
    let out = Command::new(HOST)
        .args([
            "launch",
            "--kernel-id",
            "k1",
            "--platform",
            "dev",
            "--cid",
            "2",
        ])
        .arg("--image")
        .arg(image.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("reserved"));
}

#[test]
fn ps_stop_and_logs_answer_in_json_for_an_empty_root() {
    let root = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(HOST)
            .args(args)
            .arg("--state-root")
            .arg(root.path())
            .output()
            .unwrap()
    };
    let ps = run(&["ps", "--json"]);
    assert!(ps.status.success());
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&ps.stdout).unwrap(),
        serde_json::json!([])
    );
    for args in [&["stop", "k9", "--json"][..], &["logs", "k9", "--json"]] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&out.stderr).contains("no kernel `k9`"));
    }
    let bad = run(&["stop", "../etc"]);
    assert_eq!(
        bad.status.code(),
        Some(2),
        "a bad kernel id is a usage error"
    );
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
