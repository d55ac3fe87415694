//! The enclave as PID 1 of the guest image (`/init` of the initramfs `image build` writes).
//!
//! Before the kernel code runs, PID 1 sets up what an init would:
//!
//! 1. mounts `devtmpfs` on `/dev`, `proc` on `/proc`, `sysfs` on `/sys` and `securityfs` on
//!    `/sys/kernel/security` (the TPM's event log);
//! 2. loads the kernel modules `/etc/modules` lists, in that order, with `finit_module`
//!    (the image writes the list in dependency order). A module that fails to load is logged
//!    and skipped: `sev-guest` has no device outside SEV-SNP, and a missing vsock transport
//!    surfaces as the first vsock error anyway;
//! 3. prints OVMF's TCG2 event log (`/sys/kernel/security/tpm0/binary_bios_measurements`) on
//!    the console, base64 between [`EVENTLOG_BEGIN`] and [`EVENTLOG_END`], so the host can
//!    replay it against the PCRs the enclave's quote carries (the log is public);
//! 4. copies the kernel's sealed share from QEMU's fw_cfg item [`FW_CFG_SEALED_SHARE`]
//!    (`-fw_cfg name=opt/enclave/sealed_share.cbor,file=…`) to `/state/sealed_share.cbor`
//!    when `/state` has none. The share is sealed (only an affirming appraisal by the
//!    pinned verifier releases it), so an unmeasured, host-controlled channel is enough, and
//!    the image and its measurements stay the same for every kernel;
//! 5. builds the enclave's arguments from the kernel command line: every `enclave.NAME=VALUE`
//!    becomes `--NAME VALUE` (`_` in NAME read as `-`), a bare `enclave.NAME` becomes
//!    `--NAME`; everything else on the command line is the kernel's. Defaults for PID 1:
//!    `--state-dir /state` and `--tpm-tcti device:/dev/tpmrm0` unless given.
//!
//! PID 1 must never exit (the kernel panics when init exits): on a fatal error [`halt`] logs
//! the reason to the console, syncs and powers the machine off, and sleeps forever if even
//! that fails.

use base64::Engine as _;
use nix::kmod::{finit_module, ModuleInitFlags};
use nix::mount::{mount, MsFlags};
use std::path::{Path, PathBuf};

/// Line printed before the base64 event log.
pub const EVENTLOG_BEGIN: &str = "enclave: EVENTLOG-BEGIN";
/// Line printed after the base64 event log.
pub const EVENTLOG_END: &str = "enclave: EVENTLOG-END";
/// Where the kernel exposes the firmware's TCG2 event log.
pub const EVENTLOG_PATH: &str = "/sys/kernel/security/tpm0/binary_bios_measurements";
/// The module load order the image writes.
pub const MODULES_FILE: &str = "/etc/modules";
/// State directory of the image (the sealed share arrives there).
pub const STATE_DIR: &str = "/state";
/// TCTI of the in-guest TPM resource manager.
pub const TPM_TCTI: &str = "device:/dev/tpmrm0";
/// The fw_cfg item (sysfs path) with the sealed share.
pub const FW_CFG_SEALED_SHARE: &str =
    "/sys/firmware/qemu_fw_cfg/by_name/opt/enclave/sealed_share.cbor/raw";
/// Prefix of the enclave's parameters on the kernel command line.
pub const CMDLINE_PREFIX: &str = "enclave.";

/// Why the PID-1 set-up failed.
#[derive(Debug, thiserror::Error)]
pub enum Pid1Error {
    /// "mounting {fstype} on {target}".
    #[error("mounting {fstype} on {target}")]
    Mount {
        /// Filesystem type.
        fstype: &'static str,
        /// Mount point.
        target: &'static str,
        /// Cause.
        #[source]
        source: nix::Error,
    },
    /// "creating {path}".
    #[error("creating {path}")]
    Mkdir {
        /// Directory.
        path: &'static str,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// "reading {path}".
    #[error("reading {path}")]
    Read {
        /// File.
        path: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// "writing {path}".
    #[error("writing {path}")]
    Write {
        /// File.
        path: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// "loading module {path}".
    #[error("loading module {path}")]
    Module {
        /// Module file.
        path: String,
        /// Cause.
        #[source]
        source: nix::Error,
    },
}

/// What the set-up did, for the log.
#[derive(Debug, Default)]
pub struct Setup {
    /// Modules loaded (or already present).
    pub loaded: Vec<String>,
    /// Modules that failed, with the reason (not fatal).
    pub failed: Vec<Pid1Error>,
    /// Size of the sealed share copied from fw_cfg, when there was one.
    pub sealed_share_bytes: Option<usize>,
    /// Size of the firmware event log, when there is one.
    pub eventlog_bytes: Option<usize>,
}

fn mount_fs(fstype: &'static str, target: &'static str, flags: MsFlags) -> Result<(), Pid1Error> {
    std::fs::create_dir_all(target).map_err(|source| Pid1Error::Mkdir {
        path: target,
        source,
    })?;
    match mount(Some(fstype), target, Some(fstype), flags, None::<&str>) {
        // Already mounted (e.g. the kernel's CONFIG_DEVTMPFS_MOUNT): fine.
        Ok(()) | Err(nix::Error::EBUSY) => Ok(()),
        Err(source) => Err(Pid1Error::Mount {
            fstype,
            target,
            source,
        }),
    }
}

/// Mounts the pseudo filesystems the enclave needs.
pub fn mount_all() -> Result<(), Pid1Error> {
    let nosuid = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC;
    mount_fs("devtmpfs", "/dev", MsFlags::MS_NOSUID)?;
    mount_fs("proc", "/proc", nosuid | MsFlags::MS_NODEV)?;
    mount_fs("sysfs", "/sys", nosuid | MsFlags::MS_NODEV)?;
    mount_fs(
        "securityfs",
        "/sys/kernel/security",
        nosuid | MsFlags::MS_NODEV,
    )?;
    Ok(())
}

/// The module paths of a `/etc/modules` text: one absolute path a line, `#` comments.
pub fn module_list(text: &str) -> Vec<PathBuf> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(PathBuf::from)
        .collect()
}

/// Loads one module file (`EEXIST`, already loaded, is success).
pub fn load_module(path: &Path) -> Result<(), Pid1Error> {
    let err = |source| Pid1Error::Module {
        path: path.display().to_string(),
        source,
    };
    let file = std::fs::File::open(path).map_err(|source| Pid1Error::Read {
        path: path.display().to_string(),
        source,
    })?;
    match finit_module(&file, c"", ModuleInitFlags::empty()) {
        Ok(()) | Err(nix::Error::EEXIST) => Ok(()),
        Err(e) => Err(err(e)),
    }
}

/// Loads every module `/etc/modules` lists, in order; failures are collected, not fatal.
pub fn load_modules(list: &Path, setup: &mut Setup) -> Result<(), Pid1Error> {
    let text = std::fs::read_to_string(list).map_err(|source| Pid1Error::Read {
        path: list.display().to_string(),
        source,
    })?;
    for m in module_list(&text) {
        match load_module(&m) {
            Ok(()) => setup.loaded.push(m.display().to_string()),
            Err(e) => setup.failed.push(e),
        }
    }
    Ok(())
}

/// The enclave's command-line arguments (without the program name) from the kernel command
/// line, with PID 1's defaults added.
pub fn args_from_cmdline(cmdline: &str) -> Vec<String> {
    let mut args = Vec::new();
    for tok in cmdline.split_whitespace() {
        let Some(rest) = tok.strip_prefix(CMDLINE_PREFIX) else {
            continue;
        };
        match rest.split_once('=') {
            Some((name, value)) => {
                args.push(format!("--{}", name.replace('_', "-")));
                args.push(value.to_string());
            }
            None if !rest.is_empty() => args.push(format!("--{}", rest.replace('_', "-"))),
            None => {}
        }
    }
    for (flag, default) in [("--state-dir", STATE_DIR), ("--tpm-tcti", TPM_TCTI)] {
        if !args.iter().any(|a| a == flag) {
            args.extend([flag.to_string(), default.to_string()]);
        }
    }
    args
}

/// Copies the sealed share from fw_cfg into the state directory, unless one is there.
pub fn sealed_share_from_fw_cfg(setup: &mut Setup) -> Result<(), Pid1Error> {
    let dest = Path::new(STATE_DIR).join(crate::boot::SEALED_SHARE_FILE);
    if dest.exists() {
        return Ok(());
    }
    let Ok(data) = std::fs::read(FW_CFG_SEALED_SHARE) else {
        return Ok(());
    };
    std::fs::create_dir_all(STATE_DIR).map_err(|source| Pid1Error::Mkdir {
        path: STATE_DIR,
        source,
    })?;
    std::fs::write(&dest, &data).map_err(|source| Pid1Error::Write {
        path: dest.display().to_string(),
        source,
    })?;
    setup.sealed_share_bytes = Some(data.len());
    Ok(())
}

/// Prints the firmware event log to the console (base64 lines between markers).
fn print_eventlog(setup: &mut Setup) {
    let Ok(log) = std::fs::read(EVENTLOG_PATH) else {
        eprintln!("enclave: no firmware event log at {EVENTLOG_PATH}");
        return;
    };
    setup.eventlog_bytes = Some(log.len());
    let text = base64::engine::general_purpose::STANDARD.encode(&log);
    let mut out = String::with_capacity(text.len() + text.len() / 76 + 64);
    out.push_str(EVENTLOG_BEGIN);
    out.push('\n');
    for chunk in text.as_bytes().chunks(76) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(EVENTLOG_END);
    out.push('\n');
    eprint!("{out}");
}

/// The whole PID-1 set-up; returns the enclave's arguments (program name first).
pub fn setup() -> Result<(Setup, Vec<String>), Pid1Error> {
    mount_all()?;
    let mut setup = Setup::default();
    load_modules(Path::new(MODULES_FILE), &mut setup)?;
    sealed_share_from_fw_cfg(&mut setup)?;
    print_eventlog(&mut setup);
    let cmdline = std::fs::read_to_string("/proc/cmdline").map_err(|source| Pid1Error::Read {
        path: "/proc/cmdline".into(),
        source,
    })?;
    let mut args = vec!["enclave".to_string()];
    args.extend(args_from_cmdline(&cmdline));
    // The firmware's event log travels in the evidence (whole at boot, deltas later), so the
    // verifier replays it to the quoted PCRs itself.
    if !args.iter().any(|a| a == "--event-log") && Path::new(EVENTLOG_PATH).exists() {
        args.extend(["--event-log".to_string(), EVENTLOG_PATH.to_string()]);
    }
    Ok((setup, args))
}

/// Logs `why` on the console and powers off; never returns (PID 1 must not exit).
pub fn halt(why: &str) -> ! {
    eprintln!("enclave: fatal: {why}; powering off");
    nix::unistd::sync();
    let _ = nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_POWER_OFF);
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::indexing_slicing, reason = "test code")]
    use super::*;

    #[test]
    fn enclave_parameters_come_from_the_kernel_command_line() {
        let args = args_from_cmdline(
            "console=ttyS0 panic=-1 rdinit=/init enclave.kernel_id=k1 \
             enclave.verifier_public_key=abcd enclave.gpus initrd=initrd",
        );
        assert_eq!(
            args,
            [
                "--kernel-id",
                "k1",
                "--verifier-public-key",
                "abcd",
                "--gpus",
                "--state-dir",
                "/state",
                "--tpm-tcti",
                "device:/dev/tpmrm0"
            ]
        );
        let args = args_from_cmdline("enclave.state_dir=/s enclave.tpm_tcti=mssim enclave.");
        assert_eq!(args, ["--state-dir", "/s", "--tpm-tcti", "mssim"]);
    }

    #[test]
    fn module_list_keeps_order_and_skips_comments() {
        let m = module_list("# order\n/lib/a.ko\n\n  /lib/b.ko  \n");
        assert_eq!(m, [PathBuf::from("/lib/a.ko"), PathBuf::from("/lib/b.ko")]);
    }
}
