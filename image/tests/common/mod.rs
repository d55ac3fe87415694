//! Booting an image for real: swtpm as the vTPM, OVMF, QEMU under TCG. Every missing
//! prerequisite fails the caller with the package to install (`cargo xtask test` installs
//! them); nothing here is optional.

#![allow(dead_code, reason = "each test uses a subset")]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
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

/// A QEMU (TCG, q35, OVMF, `tpm` as `tpm-crb`) running in the background; its console is
/// collected line by line. Stopped (SIGTERM to its `timeout` wrapper, which passes it on) on
/// drop.
pub struct Qemu {
    child: std::process::Child,
    console: Arc<Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
    /// When QEMU was started.
    pub start: Instant,
}

impl Qemu {
    /// Starts `kernel` + `initrd` with `append`; `extra` are further QEMU arguments. QEMU is
    /// killed by `timeout` after `timeout` at the latest.
    pub fn spawn(
        work: &Path,
        tpm: &Swtpm,
        kernel: &Path,
        initrd: &Path,
        append: &str,
        extra: &[String],
        timeout: Duration,
    ) -> Result<Self, String> {
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
            .args(extra)
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
        let stderr = child.stderr.take().ok_or("no stderr")?;
        let console = Arc::new(Mutex::new(String::new()));
        let c = console.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).split(b'\n') {
                let Ok(line) = line else { break };
                let line = String::from_utf8_lossy(&line).replace('\r', "");
                if let Ok(mut c) = c.lock() {
                    c.push_str(&line);
                    c.push('\n');
                }
            }
            let mut err = String::new();
            let _ = std::io::Read::read_to_string(&mut BufReader::new(stderr), &mut err);
            if let Ok(mut c) = c.lock() {
                c.push_str(&err);
            }
        });
        Ok(Self {
            child,
            console,
            reader: Some(reader),
            start,
        })
    }

    /// The console so far.
    pub fn console(&self) -> String {
        self.console.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// Whether QEMU is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits for QEMU to exit; returns the whole console and whether it exited cleanly.
    pub fn wait(mut self) -> Result<(String, bool), String> {
        let status = self.child.wait().map_err(|e| e.to_string())?;
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        Ok((self.console(), status.success()))
    }

    /// Stops QEMU and returns the whole console.
    pub fn stop(mut self) -> String {
        self.terminate();
        self.console()
    }

    fn terminate(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = Command::new("kill")
                .arg(self.child.id().to_string())
                .stderr(Stdio::null())
                .status();
            let _ = self.child.wait();
        }
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        self.terminate();
    }
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
    let q = Qemu::spawn(work, tpm, kernel, initrd, append, &[], timeout)?;
    let start = q.start;
    let console = q.console.clone();
    // Note when the marker first appears while QEMU runs.
    let marker_owned = marker.to_string();
    let watcher = std::thread::spawn(move || loop {
        let seen = console
            .lock()
            .map(|c| c.contains(&marker_owned))
            .unwrap_or(false);
        if seen {
            return Some(start.elapsed());
        }
        if start.elapsed() > timeout + Duration::from_secs(5) {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    });
    let (console, exit_ok) = q.wait()?;
    let total = start.elapsed();
    let marker_after = if console.contains(marker) {
        watcher.join().ok().flatten().or(Some(total))
    } else {
        None
    };
    Ok(Boot {
        console,
        marker_after,
        total,
        exit_ok,
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

/// Where `vhost-device-vsock` (crates.io) is: `target/tools/bin` (`cargo xtask test` and
/// `cargo xtask bench` install it there) or `PATH`.
pub fn vhost_device_vsock() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    // target/<profile>/deps/<test> -> target/tools/bin
    let target = exe
        .ancestors()
        .nth(3)
        .ok_or("cannot locate the target directory")?;
    let local = target.join("tools/bin/vhost-device-vsock");
    if local.is_file() {
        return Ok(local);
    }
    if require("vhost-device-vsock", "").is_ok() {
        return Ok(PathBuf::from("vhost-device-vsock"));
    }
    Err(format!(
        "vhost-device-vsock is missing: cargo install vhost-device-vsock --locked --root {} \
         (`cargo xtask test` and `cargo xtask bench` do)",
        target.join("tools").display()
    ))
}

/// Child processes of one appliance run, killed (they are our own children) on drop.
#[derive(Default)]
pub struct Children(Vec<(String, std::process::Child)>);

impl Children {
    /// Starts `cmd` with stdout and stderr to `log`.
    pub fn start(&mut self, name: &str, cmd: &mut Command, log: &Path) -> Result<(), String> {
        let f = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let f2 = f.try_clone().map_err(|e| e.to_string())?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(f)
            .stderr(f2)
            .spawn()
            .map_err(|e| format!("starting {name}: {e}"))?;
        self.0.push((name.to_string(), child));
        Ok(())
    }

    /// Fails naming the first child that has exited.
    pub fn check_alive(&mut self) -> Result<(), String> {
        for (name, c) in &mut self.0 {
            if let Ok(Some(st)) = c.try_wait() {
                return Err(format!("{name} exited: {st}"));
            }
        }
        Ok(())
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        for (_, c) in self.0.iter_mut().rev() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Polls `cond` every 100 ms until it holds or `timeout` passes.
pub fn wait_until(
    what: &str,
    timeout: Duration,
    mut cond: impl FnMut() -> bool,
) -> Result<(), String> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if cond() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!("timed out after {timeout:?} waiting for {what}"))
}

/// One request through the host proxy's public Unix socket (4-byte big-endian length
/// frames, CBOR).
pub fn call(socket: &Path, req: &wire::msg::Request) -> Result<wire::msg::Response, String> {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(socket).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    let body = wire::encode(req).map_err(|e| e.to_string())?;
    let len = u32::try_from(body.len()).map_err(|e| e.to_string())?;
    s.write_all(&len.to_be_bytes()).map_err(|e| e.to_string())?;
    s.write_all(&body).map_err(|e| e.to_string())?;
    let mut h = [0u8; 4];
    s.read_exact(&mut h).map_err(|e| e.to_string())?;
    let mut body = vec![0u8; usize::try_from(u32::from_be_bytes(h)).map_err(|e| e.to_string())?];
    s.read_exact(&mut body).map_err(|e| e.to_string())?;
    wire::decode(&body).map_err(|e| e.to_string())
}

/// The kernel id the appliance boots.
pub const KERNEL_ID: &str = "k1";
/// Guest CID of the appliance's vsock device.
pub const GUEST_CID: u32 = 3;

/// What an appliance boot reached.
pub struct Appliance {
    /// The last `health` answer through the host proxy.
    pub health: Option<wire::msg::HealthInfo>,
    /// The `manifest` answer once serving.
    pub manifest: Option<wire::msg::ManifestInfo>,
    /// QEMU start to the first `health` answer saying `Serving`.
    pub ready_after: Option<Duration>,
    /// The guest console.
    pub console: String,
    /// The logs of the host-side processes, concatenated.
    pub host_logs: String,
    /// The kernel command line given to QEMU.
    pub append: String,
    /// The verifier's result-signing public key.
    pub verifier_public_key: Vec<u8>,
}

/// The `-append` of an appliance boot: the image's fixed command line and the enclave's
/// parameters (see `enclave::pid1`).
pub fn appliance_cmdline(image_cmdline: &str, verifier_key_hex: &str) -> String {
    format!(
        "{image_cmdline} enclave.kernel_id={KERNEL_ID} enclave.verifier_public_key={verifier_key_hex} \
         enclave.platform=software"
    )
}

/// fw_cfg item that carries the kernel's sealed share (see `enclave::pid1`).
pub const FW_CFG_SEALED_SHARE: &str = "opt/enclave/sealed_share.cbor";

fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

/// Boots the built image at `img` as a whole appliance: a verifier (`verifier serve` and
/// `ceremony`; policy from `policy_json`, given the boot's kernel command line), swtpm,
/// `vhost-device-vsock` bridging the guest's virtio-vsock to a hybrid-vsock Unix socket, the
/// host proxy in front of it, and QEMU with `vhost-user-vsock-pci`. The verifier's key is on
/// the (measured) command line; the kernel's sealed share reaches the guest as the
/// (unmeasured) fw_cfg item [`FW_CFG_SEALED_SHARE`]. Polls `health` through the proxy until
/// the enclave serves, is refused, or `timeout` passes; QEMU is stopped before returning.
pub fn boot_appliance(
    work: &Path,
    img: &Path,
    bin: &Path,
    policy_json: &dyn Fn(&str) -> String,
    timeout: Duration,
) -> Result<Appliance, String> {
    use wire::msg::{KernelState, Request, Response};
    let vhost = vhost_device_vsock()?;
    let mut kids = Children::default();
    let image_cmdline = std::fs::read_to_string(img.join("cmdline")).map_err(|e| e.to_string())?;
    let db = work.join("verifier.db");
    let state_root = work.join("kernels");
    let policy_path = work.join("policy.json");

    // 1. The verifier's result-signing key (kept in its database): one short `serve`.
    std::fs::write(
        &policy_path,
        r#"{"policy_id":"key-only","allowed_levels":["KEE1-L1"],"max_evidence_age_ms":1}"#,
    )
    .map_err(|e| e.to_string())?;
    let vkey_path = work.join("verifier.pub");
    let serve = |kids: &mut Children, port: u16, log: &str| {
        kids.start(
            "verifier",
            Command::new(bin.join("verifier"))
                .arg("serve")
                .arg("--db")
                .arg(&db)
                .arg("--policy")
                .arg(&policy_path)
                .arg("--listen")
                .arg(format!("127.0.0.1:{port}"))
                .arg("--require-tls")
                .arg("--public-key-out")
                .arg(&vkey_path),
            &work.join(log),
        )
    };
    {
        let mut first = Children::default();
        serve(&mut first, free_port()?, "verifier-key.log")?;
        wait_until("the verifier's public key", Duration::from_secs(30), || {
            vkey_path.exists()
        })?;
    }
    let vkey = std::fs::read_to_string(&vkey_path).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_file(&vkey_path);
    let append = appliance_cmdline(image_cmdline.trim(), vkey.trim());
    let verifier_public_key = hex::decode(vkey.trim()).map_err(|e| e.to_string())?;

    // 2. The policy (reference PCRs of this boot), the ceremony (its shares are sealed to
    //    the policy's reference digest), and the verifier for real.
    std::fs::write(&policy_path, policy_json(&append)).map_err(|e| e.to_string())?;
    let out = Command::new(bin.join("verifier"))
        .args(["ceremony", "--json", "--threshold", "2", "--signers", "2"])
        .arg("--db")
        .arg(&db)
        .arg("--policy")
        .arg(&policy_path)
        .arg("--state-root")
        .arg(&state_root)
        .args(["--kernel", KERNEL_ID, "--kernel", "k2"])
        .output()
        .map_err(|e| format!("verifier ceremony: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "verifier ceremony failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let sealed = state_root.join(KERNEL_ID).join("sealed_share.cbor");
    let vport = free_port()?;
    serve(&mut kids, vport, "verifier.log")?;
    wait_until("the verifier", Duration::from_secs(30), || {
        vkey_path.exists()
    })?;

    // 3. vhost-device-vsock: the guest's CID 3 <-> hybrid vsock at `vsock.sock`.
    let vhost_sock = work.join("vhost-user-vsock.sock");
    let uds = work.join("vsock.sock");
    kids.start(
        "vhost-device-vsock",
        Command::new(&vhost).arg("--vm").arg(format!(
            "guest-cid={GUEST_CID},socket={},uds-path={}",
            vhost_sock.display(),
            uds.display()
        )),
        &work.join("vhost-device-vsock.log"),
    )?;
    wait_until(
        "vhost-device-vsock's socket",
        Duration::from_secs(30),
        || vhost_sock.exists(),
    )?;

    // 4. The host proxy: clients at `public.sock`, the enclave's egress to the verifier.
    let public = work.join("public.sock");
    kids.start(
        "host proxy",
        Command::new(bin.join("host"))
            .arg("proxy")
            .arg("--listen")
            .arg(format!("unix:{}", public.display()))
            .arg("--enclave")
            .arg(format!(
                "hybrid:{}:{}",
                uds.display(),
                wire::hybrid::GOVERNANCE_PORT
            ))
            .arg("--egress-tls")
            .arg(format!(
                "{}=tcp:127.0.0.1:{vport}",
                wire::hybrid::VERIFIER_PORT
            )),
        &work.join("host.log"),
    )?;
    wait_until("the host proxy", Duration::from_secs(30), || {
        public.exists()
    })?;

    // 5. QEMU.
    let tpm = Swtpm::start(work)?;
    let mem = MEMORY_MIB;
    let extra: Vec<String> = [
        "-object",
        &format!("memory-backend-memfd,id=mem,size={mem}M,share=on"),
        "-numa",
        "node,memdev=mem",
        "-chardev",
        &format!("socket,id=vsockchr,path={}", vhost_sock.display()),
        "-device",
        "vhost-user-vsock-pci,chardev=vsockchr",
        "-fw_cfg",
        &format!("name={FW_CFG_SEALED_SHARE},file={}", sealed.display()),
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    let mut qemu = Qemu::spawn(
        work,
        &tpm,
        &img.join("vmlinuz"),
        &img.join("initrd.img"),
        &append,
        &extra,
        timeout + Duration::from_secs(10),
    )?;
    let mut health = None;
    let mut manifest = None;
    let mut ready_after = None;
    while qemu.start.elapsed() < timeout && qemu.running() {
        if kids.check_alive().is_err() {
            break;
        }
        if let Ok(Response::Health(h)) = call(&public, &Request::Health) {
            let state = h.state;
            let refused = state == KernelState::Sealed
                && h.reason
                    .as_deref()
                    .is_some_and(|r| !r.contains("unreachable"));
            health = Some(h);
            if state == KernelState::Serving {
                ready_after = Some(qemu.start.elapsed());
                if let Ok(Response::Manifest(m)) = call(&public, &Request::Manifest) {
                    manifest = Some(m);
                }
                break;
            }
            if refused || state == KernelState::Halted {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let alive = kids.check_alive();
    let console = qemu.stop();
    let mut host_logs = String::new();
    if let Err(e) = alive {
        host_logs.push_str(&format!("{e}\n"));
    }
    for log in ["verifier.log", "vhost-device-vsock.log", "host.log"] {
        host_logs.push_str(&format!("--- {log} ---\n"));
        host_logs.push_str(&std::fs::read_to_string(work.join(log)).unwrap_or_default());
    }
    Ok(Appliance {
        health,
        manifest,
        ready_after,
        console,
        host_logs,
        append,
        verifier_public_key,
    })
}

/// The SHA-256 PCR 4 and PCR 9 `measure` predicts for a boot of the image at `img` with
/// `append` (QEMU direct boot, OVMF appends `initrd=initrd`).
pub fn expected_pcrs(img: &Path, append: &str) -> std::collections::BTreeMap<u8, Vec<u8>> {
    let kernel = std::fs::read(img.join("vmlinuz")).unwrap_or_else(|e| panic!("{e}"));
    let initrd = std::fs::read(img.join("initrd.img")).unwrap_or_else(|e| panic!("{e}"));
    use measurements::tdx::{linux, DirectBoot, InitrdArg};
    let boot = DirectBoot {
        kernel: &kernel,
        initrd: Some(&initrd),
        cmdline: append,
        qemu_patch: Some(linux::QemuLoad {
            memory_bytes: MEMORY_MIB << 20,
            initrd_bytes: u32::try_from(initrd.len()).unwrap_or_else(|e| panic!("{e}")),
            acpi_data_size: linux::ACPI_DATA_SIZE,
        }),
        initrd_arg: InitrdArg::Suffix,
    };
    measurements::tpm::expected_sha256_pcrs(&boot)
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .map(|(i, v)| (i, v.to_vec()))
        .collect()
}

/// The verifier's policy for an appliance boot: the software platform (KEE1-L1) with the
/// vTPM required, PCR 4 (kernel) and PCR 9 (command line, initrd) as `measure` predicts them.
pub fn appliance_policy(img: &Path, append: &str) -> String {
    let pcrs: std::collections::BTreeMap<String, String> = expected_pcrs(img, append)
        .into_iter()
        .map(|(i, v)| (i.to_string(), hex::encode(v)))
        .collect();
    serde_json::json!({
        "policy_id": "image-boot",
        "allowed_levels": ["KEE1-L1"],
        "require_tpm": true,
        "expected_pcrs": pcrs,
        // TCG: evidence collection in the guest takes seconds, not milliseconds.
        "max_evidence_age_ms": 300_000,
        "result_ttl_ms": 600_000,
        "nonce_ttl_ms": 300_000
    })
    .to_string()
}
