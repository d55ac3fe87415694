//! Image figures: `initramfs_bytes` (the built initramfs, gzip), `boot_to_init_s_tcg`
//! (QEMU start to the kernel starting the enclave as `/init`, TCG, OVMF, swtpm) and
//! `boot_to_ready_s_tcg` (QEMU start to the enclave, PID 1, appraised and answering `health`
//! as `Serving` through the host proxy over vhost-user-vsock: the appliance boot of
//! `tests/boot_qemu.rs`). Prints `{"figures": [...]}` as its last line with `--json`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "benchmark harness: a failure aborts the run"
)]

#[path = "../tests/common/mod.rs"]
mod common;

use serde_json::json;
use std::path::PathBuf;
use std::time::Duration;

fn enclave() -> PathBuf {
    if let Ok(p) = common::enclave_binary() {
        return p;
    }
    // `cargo bench` runs from target/release; the workspace's debug build has the enclave.
    let exe = std::env::current_exe().unwrap();
    let target = exe.ancestors().nth(3).unwrap().to_path_buf();
    let p = target.join("debug/enclave");
    assert!(
        p.is_file(),
        "no enclave binary: run `cargo build -p enclave` first"
    );
    p
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let filter = args.iter().find(|a| !a.starts_with("--")).cloned();
    let wanted = |name: &str| filter.as_deref().is_none_or(|f| name.contains(f));
    let mut figs = Vec::new();
    if wanted("initramfs_bytes") || wanted("boot_to_init_s_tcg") || wanted("boot_to_ready_s_tcg") {
        common::prerequisites().unwrap_or_else(|e| panic!("{e}"));
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("image");
        let exe = std::env::current_exe().unwrap();
        let cache = exe.ancestors().nth(3).unwrap().join("image-cache");
        let m = image::build(
            &image::BuildOptions {
                enclave: enclave(),
                out: img.clone(),
                cache,
                kernel_deb: None,
                allow_other_kernel: false,
                cmdline: image::pins::CMDLINE.to_string(),
                strip_debug: true,
            },
            &mut |l| eprintln!("image: {l}"),
        )
        .unwrap();
        figs.push(
            json!({"name": "initramfs_bytes", "value": m.initrd.bytes, "unit": "bytes",
                         "peer": null, "ratio": null}),
        );
        figs.push(
            json!({"name": "kernel_bytes", "value": m.kernel.bytes, "unit": "bytes",
                         "peer": null, "ratio": null}),
        );
        if wanted("boot_to_init_s_tcg") {
            let work = dir.path().join("init");
            std::fs::create_dir_all(&work).unwrap();
            let tpm = common::Swtpm::start(&work).unwrap();
            // No vsock device and no enclave parameters: the enclave stops at its first
            // vsock call and powers the machine off.
            let b = common::boot(
                &work,
                &tpm,
                &img.join("vmlinuz"),
                &img.join("initrd.img"),
                &m.cmdline,
                "Run /init as init process",
                Duration::from_secs(540),
            )
            .unwrap();
            let t = b.marker_after.expect("the kernel never started /init");
            figs.push(
                json!({"name": "boot_to_init_s_tcg", "value": (t.as_secs_f64() * 100.0).round() / 100.0,
                             "unit": "s", "peer": null, "ratio": null}),
            );
        }
        if wanted("boot_to_ready_s_tcg") {
            let work = dir.path().join("ready");
            std::fs::create_dir_all(&work).unwrap();
            let bin = enclave().parent().unwrap().to_path_buf();
            for b in ["verifier", "host"] {
                assert!(
                    bin.join(b).is_file(),
                    "{} is missing: cargo build -p {b} (`cargo xtask bench` does)",
                    bin.join(b).display()
                );
            }
            let policy = |append: &str| common::appliance_policy(&img, append);
            let a = common::boot_appliance(&work, &img, &bin, &policy, Duration::from_secs(480))
                .unwrap();
            let t = a.ready_after.unwrap_or_else(|| {
                panic!(
                    "the enclave never served: {:?}\n--- console ---\n{}\n--- host ---\n{}",
                    a.health, a.console, a.host_logs
                )
            });
            figs.push(
                json!({"name": "boot_to_ready_s_tcg", "value": (t.as_secs_f64() * 100.0).round() / 100.0,
                             "unit": "s", "peer": null, "ratio": null}),
            );
        }
    }
    for f in &figs {
        eprintln!(
            "{:<36} {:>12} {}",
            f["name"].as_str().unwrap_or(""),
            f["value"],
            f["unit"].as_str().unwrap_or("")
        );
    }
    if args.iter().any(|a| a == "--json") {
        println!("{}", json!({ "figures": figs }));
    }
}
