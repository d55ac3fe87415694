//! Installs the peer tool, `sev-snp-measure` 0.0.13 from PyPI, into a virtual environment
//! under the build's target directory (once), for the side-by-side sweep and the benchmark.
//! Missing prerequisites fail loudly: a comparison that cannot run must not pass.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The version `measure snp` is held bit-identical to.
pub const PEER_VERSION: &str = "0.0.13";

fn run(cmd: &mut Command, what: &str) -> Result<(), String> {
    let out = cmd
        .output()
        .map_err(|e| format!("{what}: cannot start: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{what} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

/// Path of the `sev-snp-measure` executable, installing it under `base` if needed.
pub fn sev_snp_measure(base: &Path) -> Result<PathBuf, String> {
    let venv = base.join(format!("sev-snp-measure-{PEER_VERSION}"));
    let bin = venv.join("bin/sev-snp-measure");
    let ok = Command::new(&bin)
        .arg("--version")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(PEER_VERSION));
    if ok {
        return Ok(bin);
    }
    let _ = std::fs::remove_dir_all(&venv);
    run(
        Command::new("python3").arg("-m").arg("venv").arg(&venv),
        "python3 -m venv (Debian: apt-get install python3-venv; `cargo xtask test` does)",
    )?;
    run(
        Command::new(venv.join("bin/pip")).args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            &format!("sev-snp-measure=={PEER_VERSION}"),
        ]),
        "pip install sev-snp-measure (needs PyPI)",
    )?;
    Ok(bin)
}

/// Debian's `ovmf` package firmware with SEV and TDX metadata.
pub fn debian_ovmf() -> Result<PathBuf, String> {
    let p = PathBuf::from("/usr/share/ovmf/OVMF.fd");
    if p.is_file() {
        Ok(p)
    } else {
        Err(
            "/usr/share/ovmf/OVMF.fd is missing: apt-get install ovmf (`cargo xtask test` does)"
                .into(),
        )
    }
}

/// Deterministic pseudo-random bytes (a kernel or initrd stand-in for hash-only inputs).
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[0]
        })
        .collect()
}

/// The `osc-veritas` release whose MRTD code is the independent TDX peer.
pub const VERITAS_VERSION: &str = "0.1.3rc1";

/// The module of `osc-veritas` that computes MRTD from an OVMF/TDVF image: td-shim's Python
/// `td_shim_tee_info_hash` (confidential-containers/td-shim), vendored by osc-veritas.
pub const VERITAS_MRTD_MODULE: &str = "veritas.vendor.td_shim_tee_info_hash";

/// Python interpreter of a virtual environment holding `osc-veritas`, installing it under
/// `base` if needed (PyPI).
pub fn osc_veritas(base: &Path) -> Result<PathBuf, String> {
    let venv = base.join(format!("osc-veritas-{VERITAS_VERSION}"));
    let python = venv.join("bin/python");
    let ok = Command::new(&python)
        .args([
            "-m",
            "pip",
            "show",
            "--disable-pip-version-check",
            "osc-veritas",
        ])
        .output()
        .is_ok_and(|o| {
            o.status.success()
                && String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .any(|l| l == format!("Version: {VERITAS_VERSION}"))
        });
    if ok {
        return Ok(python);
    }
    let _ = std::fs::remove_dir_all(&venv);
    run(
        Command::new("python3").arg("-m").arg("venv").arg(&venv),
        "python3 -m venv (Debian: apt-get install python3-venv; `cargo xtask test` does)",
    )?;
    run(
        Command::new(venv.join("bin/pip")).args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            &format!("osc-veritas=={VERITAS_VERSION}"),
        ]),
        "pip install osc-veritas (needs PyPI and Python >= 3.11)",
    )?;
    Ok(python)
}
