//! `image ovmf-amdsev`: an AmdSev OVMF (`OvmfPkg/AmdSev/AmdSevX64.dsc`, the platform with the
//! SEV kernel-hashes section) built from Debian's `edk2` source package, cached per version.
//!
//! Steps, each skipped when its result is already there: (1) `apt-get source --download-only
//! edk2=VERSION` into `CACHE/ovmf-amdsev/VERSION/src` (needs a `deb-src` line); (2)
//! `dpkg-source -x` (Debian's patches applied) into the scratch tree
//! [`BUILD_ROOT`]`/VERSION`; (3) edk2's `BaseTools`, then `build -a X64 -t GCC5 -b RELEASE -p OvmfPkg/AmdSev/AmdSevX64.dsc` (output
//! in `build.log`); (4) `FV/OVMF.fd` copied to `CACHE/ovmf-amdsev/VERSION/OVMF.fd`, checked
//! to carry the SEV hashes table, with `build-info.json`; the scratch tree is deleted.
//!
//! The platform's GRUB (`OvmfPkg/AmdSev/Grub/grub.efi`, for LUKS unlocking with an SEV
//! secret) is built from the host's `grub-mkimage` by a script the build calls; direct kernel
//! boot does not use it, so an empty `grub.efi` is put in its place (as Kata Containers and
//! confidential-containers build this platform). The firmware, and every launch digest of it,
//! depends on that choice.

use crate::ImageError;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// What to build and where.
#[derive(Debug, Clone)]
pub struct AmdSevOptions {
    /// Cache root (`target/image-cache`); the firmware goes in `ovmf-amdsev/VERSION/`.
    pub cache: PathBuf,
    /// Debian `edk2` source version.
    pub edk2_version: String,
    /// Parallel jobs for the build.
    pub jobs: usize,
    /// Build again even when the cached firmware exists.
    pub rebuild: bool,
    /// Keep the unpacked source and build tree (about 1 GiB) instead of deleting it.
    pub keep_tree: bool,
}

/// The result.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AmdSevFirmware {
    /// The cached `OVMF.fd`.
    pub path: PathBuf,
    /// Its SHA-256.
    pub sha256: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// The `edk2` source version it was built from.
    pub edk2_version: String,
    /// Whether the cached file was reused (no build ran).
    pub reused: bool,
    /// Seconds the steps took (0 when reused).
    pub seconds: u64,
}

/// Where the source is unpacked and built, whatever the cache: edk2 embeds this path in the
/// firmware, so a fixed one makes builds of the same source byte-identical across checkouts.
pub const BUILD_ROOT: &str = "/tmp/image-ovmf-amdsev";

/// The cached firmware's path for `version` under `cache`.
pub fn cached_path(cache: &Path, version: &str) -> PathBuf {
    cache.join("ovmf-amdsev").join(version).join("OVMF.fd")
}

/// The build script (run with bash in the unpacked tree; `$1` = parallel jobs).
const BUILD_SCRIPT: &str = r#"set -eu
export WORKSPACE="$PWD"
unset EDK_TOOLS_PATH CONF_PATH ECP_SOURCE EDK_SOURCE EFI_SOURCE || true
# BaseTools' Python must be the system's (Debian's python3 with distutils), not a shim.
export PYTHON_COMMAND=/usr/bin/python3
jobs="$1"
echo "== BaseTools"
make -C BaseTools -j"$jobs" ARCH=X64
set +u
set --
. ./edksetup.sh
set -u
# Direct kernel boot does not use the platform's GRUB: an empty grub.efi stands in for it.
: > OvmfPkg/AmdSev/Grub/grub.efi
echo "== build AmdSevX64"
build -a X64 -t GCC5 -b RELEASE -n "$jobs" -p OvmfPkg/AmdSev/AmdSevX64.dsc
"#;

fn which(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
}

/// Tools the build needs, with the Debian package that provides each.
fn missing_prerequisites() -> Vec<&'static str> {
    let mut missing = Vec::new();
    for (tool, package) in [
        ("nasm", "nasm"),
        ("iasl", "acpica-tools"),
        ("gcc", "build-essential"),
        ("make", "build-essential"),
        ("dpkg-source", "dpkg-dev"),
        ("apt-get", "apt"),
    ] {
        if !which(tool) && !missing.contains(&package) {
            missing.push(package);
        }
    }
    if !Path::new("/usr/include/uuid/uuid.h").is_file() {
        missing.push("uuid-dev");
    }
    if !Path::new("/usr/bin/python3").is_file() {
        missing.push("python3");
    }
    missing
}

fn sha256_file(path: &Path) -> Result<(String, u64), ImageError> {
    let data = std::fs::read(path).map_err(|e| ImageError::io("reading", path, e))?;
    Ok((hex::encode(Sha256::digest(&data)), data.len() as u64))
}

/// Checks that `path` is an OVMF with the SEV hashes table (the kernel-hashes section) at a
/// real address (other builds carry the GUID with address 0).
pub fn check_hashes_table(path: &Path) -> Result<(), ImageError> {
    let data = std::fs::read(path).map_err(|e| ImageError::io("reading", path, e))?;
    let fw = ovmf::Ovmf::parse(data).map_err(|e| ImageError::Tool {
        what: "parsing the built OVMF".into(),
        detail: e.to_string(),
    })?;
    if fw.sev_hashes_table().is_none_or(|t| t.gpa == 0) {
        return Err(ImageError::Tool {
            what: "checking the built OVMF".into(),
            detail: "it has no SEV hashes table (not an AmdSev build)".into(),
        });
    }
    Ok(())
}

fn run_logged(cmd: &mut Command, what: &str, log: &Path) -> Result<(), ImageError> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| ImageError::io("opening", log, e))?;
    let err = file
        .try_clone()
        .map_err(|e| ImageError::io("opening", log, e))?;
    let status = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::from(file))
        .stderr(Stdio::from(err))
        .status()
        .map_err(|e| ImageError::Tool {
            what: what.to_string(),
            detail: e.to_string(),
        })?;
    if !status.success() {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(15).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(ImageError::Tool {
            what: what.to_string(),
            detail: format!(
                "{status}; see {}; last lines:\n{}",
                log.display(),
                tail.join("\n")
            ),
        });
    }
    Ok(())
}

/// Builds (or reuses) the AmdSev OVMF, printing each step through `progress`.
pub fn build_ovmf_amdsev(
    opts: &AmdSevOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<AmdSevFirmware, ImageError> {
    let version = opts.edk2_version.as_str();
    let out = cached_path(&opts.cache, version);
    if out.is_file() && !opts.rebuild {
        progress(&format!("reusing the cached {}", out.display()));
        check_hashes_table(&out)?;
        let (sha256, bytes) = sha256_file(&out)?;
        return Ok(AmdSevFirmware {
            path: out,
            sha256,
            bytes,
            edk2_version: version.to_string(),
            reused: true,
            seconds: 0,
        });
    }
    let missing = missing_prerequisites();
    if !missing.is_empty() {
        return Err(ImageError::Tool {
            what: "checking build prerequisites".into(),
            detail: format!(
                "missing; install with: apt-get install {}",
                missing.join(" ")
            ),
        });
    }
    let started = Instant::now();
    let dir = opts.cache.join("ovmf-amdsev").join(version);
    let src = dir.join("src");
    std::fs::create_dir_all(&src).map_err(|e| ImageError::io("creating", &src, e))?;
    let upstream = version.split('-').next().unwrap_or(version);
    let dsc = src.join(format!("edk2_{version}.dsc").replace(':', "%3a"));
    let log = dir.join("build.log");
    let _ = std::fs::remove_file(&log);

    progress(&format!(
        "(1/4) source: edk2={version} (apt-get source --download-only)"
    ));
    if !dsc.is_file() {
        crate::kernel::run(
            Command::new("apt-get")
                .args(["source", "--download-only", &format!("edk2={version}")])
                .current_dir(&src),
            "apt-get source edk2 (needs a deb-src line for bookworm in /etc/apt/sources.list.d \
             and `apt-get update`)",
        )?;
    } else {
        progress(&format!("      already downloaded: {}", dsc.display()));
    }

    // A fixed absolute path: edk2 writes the build path into the PE images, so the firmware's
    // bytes depend on it. One build at a time per machine.
    let work = Path::new(BUILD_ROOT).join(version);
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| ImageError::io("creating", &work, e))?;
    let tree = work.join(format!("edk2-{upstream}"));
    progress(&format!(
        "(2/4) unpacking with Debian's patches (dpkg-source -x) into {}",
        tree.display()
    ));
    run_logged(
        Command::new("dpkg-source").arg("-x").arg(&dsc).arg(&tree),
        "dpkg-source -x",
        &log,
    )?;

    progress(&format!(
        "(3/4) building BaseTools and OvmfPkg/AmdSev/AmdSevX64.dsc (RELEASE, GCC5, {} jobs; \
         log: {}); this takes a while",
        opts.jobs,
        log.display()
    ));
    run_logged(
        Command::new("bash")
            .arg("-c")
            .arg(BUILD_SCRIPT)
            .arg("build-ovmf-amdsev")
            .arg(opts.jobs.to_string())
            .current_dir(&tree),
        "the edk2 build",
        &log,
    )?;

    let built = tree.join("Build/AmdSev/RELEASE_GCC5/FV/OVMF.fd");
    progress(&format!("(4/4) checking and caching {}", built.display()));
    check_hashes_table(&built)?;
    let tmp = dir.join(format!("OVMF.fd.tmp-{}", std::process::id()));
    std::fs::copy(&built, &tmp).map_err(|e| ImageError::io("copying", &built, e))?;
    std::fs::rename(&tmp, &out).map_err(|e| ImageError::io("renaming", &tmp, e))?;
    let (sha256, bytes) = sha256_file(&out)?;
    let seconds = started.elapsed().as_secs();
    let result = AmdSevFirmware {
        path: out,
        sha256,
        bytes,
        edk2_version: version.to_string(),
        reused: false,
        seconds,
    };
    let info = dir.join("build-info.json");
    let json = serde_json::to_vec_pretty(&result).unwrap_or_default();
    std::fs::write(&info, json).map_err(|e| ImageError::io("writing", &info, e))?;
    if opts.keep_tree {
        progress(&format!("kept the build tree {}", work.display()));
    } else {
        std::fs::remove_dir_all(&work).map_err(|e| ImageError::io("removing", &work, e))?;
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        reason = "test code: a failed expectation is a test failure"
    )]

    use super::*;

    #[test]
    fn the_cache_layout_is_per_version() {
        assert_eq!(
            cached_path(Path::new("c"), "2022.11-6+deb12u2"),
            Path::new("c/ovmf-amdsev/2022.11-6+deb12u2/OVMF.fd")
        );
    }

    #[test]
    fn a_cached_file_without_the_hashes_table_is_refused_not_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = cached_path(dir.path(), "v");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        // Not an OVMF at all.
        std::fs::write(&path, vec![0u8; 8192]).unwrap();
        let opts = AmdSevOptions {
            cache: dir.path().to_path_buf(),
            edk2_version: "v".into(),
            jobs: 1,
            rebuild: false,
            keep_tree: false,
        };
        let mut lines = Vec::new();
        let err = build_ovmf_amdsev(&opts, &mut |l| lines.push(l.to_string())).unwrap_err();
        assert!(lines.iter().any(|l| l.contains("reusing")), "{lines:?}");
        assert!(err.to_string().contains("no SEV hashes table"), "{err}");
        // Debian's OvmfPkgX64 build carries the hashes-table GUID at address 0.
        let debian = Path::new("/usr/share/ovmf/OVMF.fd");
        if debian.is_file() {
            let err = check_hashes_table(debian).unwrap_err();
            assert!(err.to_string().contains("no SEV hashes table"), "{err}");
        }
    }
}
