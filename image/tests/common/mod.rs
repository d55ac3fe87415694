//! Booting an image for real: swtpm as the vTPM, OVMF, QEMU under TCG. Every missing
//! prerequisite fails the caller with the package to install (`cargo xtask test` installs
//! them); nothing here is optional.

#![allow(dead_code, reason = "each test uses a subset")]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// OVMF build the boot uses (Debian `ovmf`): the 4 MiB code volume and its variable store.
pub const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
/// Template of the variable store.
pub const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";
/// Guest memory of every boot (QEMU's kernel-header patch depends on it).
pub const MEMORY_MIB: u64 = 1024;

/// Fails with what to install when `tool --help` does not run.
pub fn require(tool: &str, package: &str) -> Result<(), String> {
    let ok = Command::new(tool)
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{tool}` is missing: apt-get install {package} (`cargo xtask test` does)"
        ))
    }
}

/// Checks QEMU, swtpm and OVMF are installed.
pub fn prerequisites() -> Result<(), String> {
    require("qemu-system-x86_64", "qemu-system-x86")?;
    require("swtpm", "swtpm")?;
    require("swtpm_setup", "swtpm-tools")?;
    for f in [OVMF_CODE, OVMF_VARS] {
        if !Path::new(f).is_file() {
            return Err(format!(
                "{f} is missing: apt-get install ovmf (`cargo xtask test` does)"
            ));
        }
    }
    Ok(())
}

/// The enclave binary the workspace built (`cargo build --workspace --bins`, which
/// `cargo xtask test` runs first), next to this test's own target directory.
pub fn enclave_binary() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    // target/<profile>/deps/<test> -> target/<profile>/enclave
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or("cannot locate the target directory")?;
    let p = profile_dir.join("enclave");
    if p.is_file() {
        Ok(p)
    } else {
        Err(format!(
            "{} is missing: build it first (`cargo build -p enclave`; `cargo xtask test` does)",
            p.display()
        ))
    }
}

/// A running swtpm with SHA-256 and SHA-384 PCR banks, stopped on drop (by its pid).
pub struct Swtpm {
    pub dir: PathBuf,
    pid: Option<u32>,
}

impl Swtpm {
    pub fn start(dir: &Path) -> Result<Self, String> {
        let state = dir.join("tpm");
        std::fs::create_dir_all(&state).map_err(|e| e.to_string())?;
        let out = Command::new("swtpm_setup")
            .args([
                "--tpm2",
                "--pcr-banks",
                "sha256,sha384",
                "--overwrite",
                "--tpmstate",
            ])
            .arg(&state)
            .output()
            .map_err(|e| format!("swtpm_setup: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "swtpm_setup failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let pidfile = dir.join("swtpm.pid");
        let status = Command::new("swtpm")
            .args(["socket", "--tpm2", "--daemon", "--tpmstate"])
            .arg(format!("dir={}", state.display()))
            .arg("--ctrl")
            .arg(format!(
                "type=unixio,path={}",
                dir.join("swtpm.sock").display()
            ))
            .arg("--pid")
            .arg(format!("file={}", pidfile.display()))
            .status()
            .map_err(|e| format!("swtpm: {e}"))?;
        if !status.success() {
            return Err("swtpm did not start".into());
        }
        let pid = std::fs::read_to_string(&pidfile)
            .ok()
            .and_then(|s| s.trim().parse().ok());
        Ok(Self {
            dir: dir.to_path_buf(),
            pid,
        })
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("swtpm.sock")
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        if let Some(pid) = self.pid {
            // swtpm exits by itself when QEMU disconnects; this covers early failures.
            let _ = Command::new("kill")
                .arg(pid.to_string())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// What a boot printed and when the first line containing `marker` appeared.
pub struct Boot {
    pub console: String,
    pub marker_after: Option<Duration>,
    pub total: Duration,
    pub exit_ok: bool,
}

/// Boots `kernel` + `initrd` with `append` under TCG with OVMF and `tpm` attached, until
/// QEMU exits (the guest powers off or panics; `-no-reboot`) or `timeout` passes.
pub fn boot(
    work: &Path,
    tpm: &Swtpm,
    kernel: &Path,
    initrd: &Path,
    append: &str,
    marker: &str,
    timeout: Duration,
) -> Result<Boot, String> {
    let vars = work.join("vars.fd");
    std::fs::copy(OVMF_VARS, &vars).map_err(|e| e.to_string())?;
    let start = Instant::now();
    let mut child = Command::new("timeout")
        .arg(timeout.as_secs().to_string())
        .arg("qemu-system-x86_64")
        .args([
            "-machine",
            "q35",
            "-m",
            &MEMORY_MIB.to_string(),
            "-nographic",
            "-no-reboot",
        ])
        .args([
            "-drive",
            &format!("if=pflash,format=raw,unit=0,file={OVMF_CODE},readonly=on"),
        ])
        .args([
            "-drive",
            &format!("if=pflash,format=raw,unit=1,file={}", vars.display()),
        ])
        .args([
            "-chardev",
            &format!("socket,id=chrtpm,path={}", tpm.socket().display()),
        ])
        .args([
            "-tpmdev",
            "emulator,id=tpm0,chardev=chrtpm",
            "-device",
            "tpm-crb,tpmdev=tpm0",
        ])
        .arg("-kernel")
        .arg(kernel)
        .arg("-initrd")
        .arg(initrd)
        .args(["-append", append])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("qemu-system-x86_64: {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut console = String::new();
    let mut marker_after = None;
    for line in BufReader::new(stdout).split(b'\n') {
        let line = String::from_utf8_lossy(&line.map_err(|e| e.to_string())?).replace('\r', "");
        if marker_after.is_none() && line.contains(marker) {
            marker_after = Some(start.elapsed());
        }
        console.push_str(&line);
        console.push('\n');
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut err);
    }
    console.push_str(&err);
    Ok(Boot {
        console,
        marker_after,
        total: start.elapsed(),
        exit_ok: status.success(),
    })
}

/// A probe initramfs: busybox as `/init`'s shell; prints the SHA-256 PCRs 0-9 and the TCG2
/// event log (base64) between markers, then powers off.
pub fn probe_initramfs() -> Result<Vec<u8>, String> {
    let busybox = std::fs::read("/usr/bin/busybox")
        .or_else(|_| std::fs::read("/bin/busybox"))
        .map_err(|_| {
            "busybox is missing: apt-get install busybox-static (`cargo xtask test` does)"
        })?;
    let script = "#!/bin/busybox sh\n\
        /bin/busybox mkdir -p /proc /sys\n\
        /bin/busybox mount -t proc proc /proc\n\
        /bin/busybox mount -t sysfs sys /sys\n\
        /bin/busybox mount -t securityfs securityfs /sys/kernel/security\n\
        for i in 0 1 2 3 4 5 6 7 8 9; do echo \"PCR $i $(/bin/busybox cat /sys/class/tpm/tpm0/pcr-sha256/$i)\"; done\n\
        echo LOG-BEGIN\n\
        /bin/busybox base64 /sys/kernel/security/tpm0/binary_bios_measurements\n\
        echo LOG-END\n\
        /bin/busybox poweroff -f\n";
    let mut a = image::cpio::Archive::default();
    a.insert(
        "bin/busybox",
        image::cpio::Node::File {
            data: busybox,
            mode: 0o755,
        },
    );
    a.insert(
        "init",
        image::cpio::Node::File {
            data: script.as_bytes().to_vec(),
            mode: 0o755,
        },
    );
    a.insert(
        "dev/console",
        image::cpio::Node::CharDev { major: 5, minor: 1 },
    );
    image::gzip(&a.to_bytes()).map_err(|e| e.to_string())
}

/// SHA-256 PCR values by index.
pub type Pcrs = Vec<(u32, Vec<u8>)>;

/// The PCR values and the event log the probe printed.
pub fn probe_output(console: &str) -> Result<(Pcrs, Vec<u8>), String> {
    let mut pcrs = Vec::new();
    for line in console.lines() {
        let mut parts = line.split_whitespace();
        if parts.next() == Some("PCR") {
            if let (Some(i), Some(v)) = (parts.next(), parts.next()) {
                let i = i.parse().map_err(|_| format!("bad PCR line `{line}`"))?;
                pcrs.push((
                    i,
                    hex::decode(v).map_err(|_| format!("bad PCR line `{line}`"))?,
                ));
            }
        }
    }
    let b64: String = console
        .split("LOG-BEGIN\n")
        .nth(1)
        .and_then(|s| s.split("LOG-END").next())
        .ok_or("no event log in the console output")?
        .lines()
        .filter(|l| !l.starts_with('['))
        .collect();
    let log = base64_decode(&b64)?;
    Ok((pcrs, log))
}

fn base64_decode(s: &str) -> Result<Vec<u8>, String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes().filter(|c| !c.is_ascii_whitespace() && *c != b'=') {
        let v = ALPHABET
            .iter()
            .position(|a| *a == c)
            .ok_or("event log is not base64")?;
        acc = (acc << 6) | u32::try_from(v).map_err(|_| "base64")?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((acc >> bits) & 0xff).map_err(|_| "base64")?);
        }
    }
    Ok(out)
}
