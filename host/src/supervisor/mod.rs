//! One confidential VM per governance kernel: `host launch`, `host ps`, `host stop`,
//! `host logs`.
//!
//! Each kernel gets a state directory `<root>/<kernel-id>/` holding everything that belongs
//! to its VM and nothing else:
//!
//! ```text
//! instance.json   what was launched: platform, vCPUs, memory, vsock CID, argv, processes
//! tpm/            its swtpm vTPM state
//! swtpm.sock      swtpm control socket (QEMU's TPM emulator backend)
//! swtpm.log       swtpm's log
//! qmp.sock        QMP socket, for status and stop
//! console.log     QEMU's serial console and its own messages
//! ```
//!
//! The vsock context id is chosen per host: the lowest id from
//! [`launcher::FIRST_GUEST_CID`] that no live instance under the same root uses (or the
//! one asked for, if free). Processes are started in their own process group, so they
//! outlive `host launch` and a terminal's ^C; they are found again by pid *and* start
//! time ([`process::ProcessRef`]), so a recycled pid is never signalled.
//!
//! The supervisor never hides a failure: if swtpm or QEMU exits while starting, `launch`
//! fails with the tail of its log, stops what it started, and the instance is left
//! recorded as failed for `host logs`.

pub mod process;
pub mod qmp;

use crate::launcher::{self, GuestCid, LaunchError, LaunchSpec, Mode, VsockDevice};
use process::ProcessRef;
use qmp::{Qmp, QmpError};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Where state directories live unless told otherwise.
pub const DEFAULT_STATE_ROOT: &str = "/var/lib/enclave-host";
/// Environment variable overriding [`DEFAULT_STATE_ROOT`].
pub const STATE_ROOT_ENV: &str = "ENCLAVE_HOST_STATE";
/// The swtpm binary used unless told otherwise.
pub const DEFAULT_SWTPM: &str = "swtpm";
/// The record of one instance inside its state directory.
pub const INSTANCE_FILE: &str = "instance.json";
/// QEMU's console and messages.
pub const CONSOLE_LOG: &str = "console.log";
/// swtpm's log.
pub const SWTPM_LOG: &str = "swtpm.log";
/// Image file names (as the `image` tool writes them).
pub const IMAGE_KERNEL: &str = "vmlinuz";
/// See [`IMAGE_KERNEL`].
pub const IMAGE_INITRD: &str = "initrd.img";
/// See [`IMAGE_KERNEL`]; optional, [`launcher::DEFAULT_APPEND`] without it.
pub const IMAGE_CMDLINE: &str = "cmdline";
/// Longest kernel id: it names a directory and a QEMU VM.
pub const MAX_KERNEL_ID_CHARS: usize = 64;
/// Time swtpm and QEMU each get to come up.
pub const START_TIMEOUT_MS: u64 = 15_000;
/// Time QEMU gets to quit after a QMP `quit`, and each signal after that.
pub const STOP_GRACE_MS: u64 = 5_000;
/// Longest log tail returned by `logs` or quoted in an error.
pub const MAX_LOG_TAIL_BYTES: u64 = 256 * 1024;

/// Errors of the supervisor; each says what to do about it where that is not obvious.
#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    /// "kernel id `{0}` is not 1-64 letters, digits, `-`, `_` or `.` (not starting with `.`)".
    #[error(
        "kernel id `{0}` is not 1-64 letters, digits, `-`, `_` or `.` (not starting with `.`)"
    )]
    KernelId(String),
    /// "image file `{path}` is missing or unreadable".
    #[error("image file `{path}` is missing or unreadable")]
    Image {
        /// The file.
        path: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// "kernel `{0}` is already running; `host stop {0}` first".
    #[error("kernel `{0}` is already running; `host stop {0}` first")]
    AlreadyRunning(String),
    /// "no kernel `{0}` under this state root".
    #[error("no kernel `{0}` under this state root")]
    NoSuchKernel(String),
    /// "vsock cid {0} is in use by kernel `{1}`".
    #[error("vsock cid {0} is in use by kernel `{1}`")]
    CidInUse(u32, String),
    /// "no free vsock cid".
    #[error("no free vsock cid")]
    NoFreeCid,
    /// "could not build the qemu command line".
    #[error("could not build the qemu command line")]
    Argv(#[from] LaunchError),
    /// "could not start `{program}` (is it installed?)".
    #[error("could not start `{program}` (is it installed?)")]
    Spawn {
        /// The program.
        program: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// "{what} exited while starting:\n{log}".
    #[error("{what} exited while starting:\n{log}")]
    ExitedEarly {
        /// swtpm or qemu.
        what: &'static str,
        /// The tail of its log.
        log: String,
    },
    /// "{what} did not come up within {ms} ms".
    #[error("{what} did not come up within {ms} ms")]
    StartTimeout {
        /// swtpm or qemu.
        what: &'static str,
        /// The timeout.
        ms: u64,
    },
    /// "state file `{path}`".
    #[error("state file `{path}`")]
    State {
        /// The file or directory.
        path: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// "instance record `{path}` is not valid".
    #[error("instance record `{path}` is not valid")]
    Record {
        /// The file.
        path: String,
        /// Cause.
        #[source]
        source: serde_json::Error,
    },
    /// "kernel `{0}` did not stop".
    #[error("kernel `{0}` did not stop")]
    StopFailed(String),
}

fn state_err(path: &Path) -> impl FnOnce(std::io::Error) -> SupervisorError + '_ {
    move |source| SupervisorError::State {
        path: path.display().to_string(),
        source,
    }
}

/// A kernel id fit to name a directory and a VM.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct KernelId(String);

impl TryFrom<String> for KernelId {
    type Error = SupervisorError;
    fn try_from(id: String) -> Result<Self, Self::Error> {
        let ok = !id.is_empty()
            && id.len() <= MAX_KERNEL_ID_CHARS
            && !id.starts_with('.')
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if ok {
            Ok(KernelId(id))
        } else {
            Err(SupervisorError::KernelId(id))
        }
    }
}

impl From<KernelId> for String {
    fn from(id: KernelId) -> String {
        id.0
    }
}

impl std::fmt::Display for KernelId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for KernelId {
    type Err = SupervisorError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        KernelId::try_from(s.to_owned())
    }
}

/// A guest image directory: kernel, initramfs, command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// `vmlinuz`.
    pub kernel: PathBuf,
    /// `initrd.img`.
    pub initrd: PathBuf,
    /// Contents of `cmdline` (trimmed), or [`launcher::DEFAULT_APPEND`].
    pub cmdline: String,
}

impl Image {
    /// Opens `dir`, checking that the kernel and initramfs are readable files.
    pub fn open(dir: &Path) -> Result<Image, SupervisorError> {
        let file = |name: &str| -> Result<PathBuf, SupervisorError> {
            let path = dir.join(name);
            let path = std::fs::canonicalize(&path).map_err(|source| SupervisorError::Image {
                path: path.display().to_string(),
                source,
            })?;
            File::open(&path).map_err(|source| SupervisorError::Image {
                path: path.display().to_string(),
                source,
            })?;
            Ok(path)
        };
        let kernel = file(IMAGE_KERNEL)?;
        let initrd = file(IMAGE_INITRD)?;
        let cmdline = match std::fs::read_to_string(dir.join(IMAGE_CMDLINE)) {
            Ok(text) => text.trim().to_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                launcher::DEFAULT_APPEND.to_owned()
            }
            Err(source) => {
                return Err(SupervisorError::Image {
                    path: dir.join(IMAGE_CMDLINE).display().to_string(),
                    source,
                })
            }
        };
        Ok(Image {
            kernel,
            initrd,
            cmdline,
        })
    }
}

/// What to launch.
#[derive(Debug, Clone)]
pub struct LaunchRequest {
    /// The kernel.
    pub kernel_id: KernelId,
    /// SEV-SNP, TDX or dev.
    pub platform: Mode,
    /// vCPUs.
    pub vcpus: u32,
    /// Memory.
    pub memory_mib: u32,
    /// The image directory.
    pub image: PathBuf,
    /// A specific vsock context id, else the lowest free one.
    pub cid: Option<GuestCid>,
    /// Firmware override (see [`LaunchSpec::firmware`]).
    pub firmware: Option<PathBuf>,
    /// The vsock device.
    pub vsock: VsockDevice,
    /// Start with the vCPUs stopped (QEMU `-S`): set up, parse-checked, not running.
    pub paused: bool,
    /// QEMU binary.
    pub qemu: PathBuf,
    /// swtpm binary.
    pub swtpm: PathBuf,
    /// State root.
    pub state_root: PathBuf,
}

/// The record kept in `instance.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    /// Kernel id.
    pub kernel_id: KernelId,
    /// `sev-snp`, `tdx` or `dev`.
    pub platform: String,
    /// vCPUs.
    pub vcpus: u32,
    /// Memory in MiB.
    pub memory_mib: u32,
    /// vsock context id.
    pub cid: u32,
    /// The image directory.
    pub image: PathBuf,
    /// The state directory.
    pub state_dir: PathBuf,
    /// QMP socket.
    pub qmp_socket: PathBuf,
    /// swtpm control socket.
    pub tpm_socket: PathBuf,
    /// The QEMU argv.
    pub argv: Vec<String>,
    /// QEMU, once started.
    pub qemu: Option<ProcessRef>,
    /// swtpm, once started.
    pub swtpm: Option<ProcessRef>,
    /// When launched (Unix ms).
    pub launched_at_ms: u64,
    /// Why the launch failed, if it did.
    pub failure: Option<String>,
}

/// What `ps` says about an instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Status {
    /// The record.
    #[serde(flatten)]
    pub instance: Instance,
    /// `running`, `prelaunch`, `paused`, … (QEMU's run state), `exited` or `failed`.
    pub state: String,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The state directory of `id` under `root`.
pub fn state_dir(root: &Path, id: &KernelId) -> PathBuf {
    root.join(&id.0)
}

fn read_instance(dir: &Path) -> Result<Instance, SupervisorError> {
    let path = dir.join(INSTANCE_FILE);
    let text = std::fs::read_to_string(&path).map_err(state_err(&path))?;
    serde_json::from_str(&text).map_err(|source| SupervisorError::Record {
        path: path.display().to_string(),
        source,
    })
}

fn write_instance(instance: &Instance) -> Result<(), SupervisorError> {
    let path = instance.state_dir.join(INSTANCE_FILE);
    let tmp = instance.state_dir.join(format!("{INSTANCE_FILE}.tmp"));
    let json = serde_json::to_vec_pretty(instance).map_err(|source| SupervisorError::Record {
        path: path.display().to_string(),
        source,
    })?;
    std::fs::write(&tmp, json).map_err(state_err(&tmp))?;
    std::fs::rename(&tmp, &path).map_err(state_err(&path))
}

/// Every instance recorded under `root`, sorted by kernel id. Unreadable entries are
/// skipped with a warning (a stray directory must not hide the others).
pub fn instances(root: &Path) -> Result<Vec<Instance>, SupervisorError> {
    let entries = match std::fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(state_err(root)(source)),
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        if !entry.path().join(INSTANCE_FILE).exists() {
            continue;
        }
        match read_instance(&entry.path()) {
            Ok(i) => out.push(i),
            Err(e) => tracing::warn!(dir = %entry.path().display(), error = %e, "skipping"),
        }
    }
    out.sort_by(|a, b| a.kernel_id.cmp(&b.kernel_id));
    Ok(out)
}

fn qemu_alive(i: &Instance) -> bool {
    i.qemu.is_some_and(|p| p.alive())
}

/// The state `ps` reports for `i`.
pub fn status(i: &Instance) -> Status {
    let state = if i.failure.is_some() {
        "failed".to_owned()
    } else if qemu_alive(i) {
        Qmp::connect(&i.qmp_socket, Duration::from_secs(2))
            .and_then(|mut q| q.status())
            .unwrap_or_else(|_| "unresponsive".to_owned())
    } else {
        "exited".to_owned()
    };
    Status {
        instance: i.clone(),
        state,
    }
}

/// The vsock context id for a new instance of `id`.
fn choose_cid(
    root: &Path,
    id: &KernelId,
    wanted: Option<GuestCid>,
) -> Result<GuestCid, SupervisorError> {
    let live: Vec<(u32, KernelId)> = instances(root)?
        .into_iter()
        .filter(|i| i.kernel_id != *id && qemu_alive(i))
        .map(|i| (i.cid, i.kernel_id))
        .collect();
    if let Some(cid) = wanted {
        return match live.iter().find(|(c, _)| *c == cid.get()) {
            Some((c, owner)) => Err(SupervisorError::CidInUse(*c, owner.to_string())),
            None => Ok(cid),
        };
    }
    (launcher::FIRST_GUEST_CID..u32::MAX)
        .find(|c| !live.iter().any(|(used, _)| used == c))
        .and_then(|c| GuestCid::try_from(c).ok())
        .ok_or(SupervisorError::NoFreeCid)
}

/// The last [`MAX_LOG_TAIL_BYTES`] of a log file, lossily decoded; empty if it is missing.
pub fn log_tail(path: &Path, max_bytes: u64) -> String {
    let Ok(mut f) = File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let take = len.min(max_bytes);
    if f.seek(SeekFrom::Start(len - take)).is_err() {
        return String::new();
    }
    let mut buf = Vec::new();
    let _ = f.take(take).read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

fn spawn_detached(
    program: &Path,
    args: &[String],
    log: &Path,
) -> Result<std::process::Child, SupervisorError> {
    use std::os::unix::process::CommandExt;
    let out = File::create(log).map_err(state_err(log))?;
    let err = out.try_clone().map_err(state_err(log))?;
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        // Its own process group: it outlives `host launch` and ignores the terminal's ^C.
        .process_group(0)
        .spawn()
        .map_err(|source| SupervisorError::Spawn {
            program: program.display().to_string(),
            source,
        })
}

/// Waits until `ready` holds or `child` exits; `what` names it in errors.
fn wait_ready(
    child: &mut std::process::Child,
    what: &'static str,
    log: &Path,
    mut ready: impl FnMut() -> bool,
) -> Result<(), SupervisorError> {
    let deadline = Instant::now() + Duration::from_millis(START_TIMEOUT_MS);
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            return Err(SupervisorError::ExitedEarly {
                what,
                log: log_tail(log, 4096).trim_end().to_owned(),
            });
        }
        if ready() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(SupervisorError::StartTimeout {
                what,
                ms: START_TIMEOUT_MS,
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Builds the [`Instance`] record and QEMU argv for `req` without starting anything.
pub fn plan(req: &LaunchRequest) -> Result<Instance, SupervisorError> {
    let image = Image::open(&req.image)?;
    let dir = state_dir(&req.state_root, &req.kernel_id);
    let cid = choose_cid(&req.state_root, &req.kernel_id, req.cid)?;
    let tpm_socket = dir.join("swtpm.sock");
    let qmp_socket = dir.join("qmp.sock");
    let mut spec = LaunchSpec::new(
        req.platform,
        image.kernel,
        image.initrd,
        cid,
        tpm_socket.clone(),
    );
    spec.append = image.cmdline;
    spec.firmware = req.firmware.clone();
    spec.memory_mib = req.memory_mib;
    spec.vcpus = req.vcpus;
    spec.qemu = req.qemu.clone();
    spec.vsock = req.vsock;
    spec.qmp_socket = Some(qmp_socket.clone());
    spec.name = Some(req.kernel_id.to_string());
    spec.start_paused = req.paused;
    let argv = launcher::qemu_argv(&spec)?;
    Ok(Instance {
        kernel_id: req.kernel_id.clone(),
        platform: req.platform.name().to_owned(),
        vcpus: req.vcpus,
        memory_mib: req.memory_mib,
        cid: cid.get(),
        image: req.image.clone(),
        state_dir: dir,
        qmp_socket,
        tpm_socket,
        argv,
        qemu: None,
        swtpm: None,
        launched_at_ms: now_ms(),
        failure: None,
    })
}

/// Starts the kernel's swtpm and QEMU and returns once QEMU answers on QMP.
pub fn launch(req: &LaunchRequest) -> Result<Instance, SupervisorError> {
    let dir = state_dir(&req.state_root, &req.kernel_id);
    if let Ok(old) = read_instance(&dir) {
        if qemu_alive(&old) {
            return Err(SupervisorError::AlreadyRunning(req.kernel_id.to_string()));
        }
        // A previous run: its sockets are stale, its vTPM state is kept.
        if let Some(swtpm) = old.swtpm {
            swtpm.terminate(Duration::from_millis(STOP_GRACE_MS));
        }
    }
    let mut instance = plan(req)?;
    std::fs::create_dir_all(dir.join("tpm")).map_err(state_err(&dir))?;
    for stale in [&instance.tpm_socket, &instance.qmp_socket] {
        let _ = std::fs::remove_file(stale);
    }
    write_instance(&instance)?;
    match start(req, &mut instance) {
        Ok(()) => {
            write_instance(&instance)?;
            Ok(instance)
        }
        Err(e) => {
            if let Some(p) = instance.qemu {
                p.terminate(Duration::from_millis(STOP_GRACE_MS));
            }
            if let Some(p) = instance.swtpm {
                p.terminate(Duration::from_millis(STOP_GRACE_MS));
            }
            instance.failure = Some(e.to_string());
            write_instance(&instance)?;
            Err(e)
        }
    }
}

fn start(req: &LaunchRequest, instance: &mut Instance) -> Result<(), SupervisorError> {
    let dir = instance.state_dir.clone();
    let swtpm_log = dir.join(SWTPM_LOG);
    let swtpm_args: Vec<String> = vec![
        "socket".into(),
        "--tpm2".into(),
        "--tpmstate".into(),
        format!("dir={}", dir.join("tpm").display()),
        "--ctrl".into(),
        format!("type=unixio,path={}", instance.tpm_socket.display()),
        // Exit when QEMU closes the control channel: the vTPM lives and dies with its VM.
        "--terminate".into(),
    ];
    let mut swtpm = spawn_detached(&req.swtpm, &swtpm_args, &swtpm_log)?;
    instance.swtpm = ProcessRef::of(swtpm.id());
    let sock = instance.tpm_socket.clone();
    wait_ready(&mut swtpm, "swtpm", &swtpm_log, || sock.exists())?;

    let console = dir.join(CONSOLE_LOG);
    let (program, args) = instance
        .argv
        .split_first()
        .map(|(p, a)| (PathBuf::from(p), a.to_vec()))
        .ok_or(SupervisorError::Argv(LaunchError::Zero("argv")))?;
    let mut qemu = spawn_detached(&program, &args, &console)?;
    instance.qemu = ProcessRef::of(qemu.id());
    let qmp = instance.qmp_socket.clone();
    // QMP answers only once QEMU has set the machine up: every option was accepted and
    // every device realized.
    wait_ready(&mut qemu, "qemu", &console, || {
        Qmp::connect(&qmp, Duration::from_secs(1))
            .and_then(|mut q| q.status())
            .is_ok()
    })?;
    Ok(())
}

/// What `stop` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stopped {
    /// The kernel.
    pub kernel_id: KernelId,
    /// `quit` (QMP), `signal` (SIGTERM/SIGKILL) or `already-stopped`.
    pub how: String,
    /// Whether the state directory was removed.
    pub purged: bool,
}

/// Stops the kernel's QEMU (QMP `quit`, then signals) and its swtpm; with `purge`, removes
/// its state directory too.
pub fn stop(root: &Path, id: &KernelId, purge: bool) -> Result<Stopped, SupervisorError> {
    let dir = state_dir(root, id);
    let instance = match read_instance(&dir) {
        Ok(i) => i,
        Err(SupervisorError::State { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            return Err(SupervisorError::NoSuchKernel(id.to_string()))
        }
        Err(e) => return Err(e),
    };
    let grace = Duration::from_millis(STOP_GRACE_MS);
    let how = match instance.qemu.filter(ProcessRef::alive) {
        None => "already-stopped",
        Some(qemu) => {
            let quit = Qmp::connect(&instance.qmp_socket, Duration::from_secs(2)).and_then(
                |mut q| match q.execute("quit") {
                    // QEMU may close the socket before replying to `quit`.
                    Ok(_) | Err(QmpError::Closed) => Ok(()),
                    Err(e) => Err(e),
                },
            );
            if quit.is_ok() && qemu.wait_gone(grace) {
                "quit"
            } else if qemu.terminate(grace) {
                "signal"
            } else {
                return Err(SupervisorError::StopFailed(id.to_string()));
            }
        }
    };
    if let Some(swtpm) = instance.swtpm {
        if !swtpm.wait_gone(grace) && !swtpm.terminate(grace) {
            return Err(SupervisorError::StopFailed(id.to_string()));
        }
    }
    if purge {
        std::fs::remove_dir_all(&dir).map_err(state_err(&dir))?;
    }
    Ok(Stopped {
        kernel_id: id.clone(),
        how: how.to_owned(),
        purged: purge,
    })
}

/// A kernel's logs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Logs {
    /// The kernel.
    pub kernel_id: KernelId,
    /// The tail of QEMU's console (serial output and QEMU's own messages).
    pub console: String,
    /// The tail of swtpm's log.
    pub swtpm: String,
    /// Why the launch failed, if it did.
    pub failure: Option<String>,
}

/// The tails of a kernel's console and swtpm logs, at most `max_bytes` each.
pub fn logs(root: &Path, id: &KernelId, max_bytes: u64) -> Result<Logs, SupervisorError> {
    let dir = state_dir(root, id);
    let instance = read_instance(&dir).map_err(|e| match e {
        SupervisorError::State { .. } => SupervisorError::NoSuchKernel(id.to_string()),
        other => other,
    })?;
    let max = max_bytes.min(MAX_LOG_TAIL_BYTES);
    Ok(Logs {
        kernel_id: id.clone(),
        console: log_tail(&dir.join(CONSOLE_LOG), max),
        swtpm: log_tail(&dir.join(SWTPM_LOG), max),
        failure: instance.failure,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_ids_are_checked() {
        for ok in ["k1", "kernel-1.prod", "K_2"] {
            assert!(ok.parse::<KernelId>().is_ok(), "{ok}");
        }
        for bad in ["", ".hidden", "a/b", "..", "a b", &"x".repeat(65)] {
            assert!(bad.parse::<KernelId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn images_need_kernel_and_initrd() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            Image::open(dir.path()),
            Err(SupervisorError::Image { .. })
        ));
        std::fs::write(dir.path().join(IMAGE_KERNEL), b"k").unwrap();
        std::fs::write(dir.path().join(IMAGE_INITRD), b"i").unwrap();
        assert_eq!(
            Image::open(dir.path()).unwrap().cmdline,
            launcher::DEFAULT_APPEND
        );
        std::fs::write(
            dir.path().join(IMAGE_CMDLINE),
            "console=ttyS0 rdinit=/init\n",
        )
        .unwrap();
        assert_eq!(
            Image::open(dir.path()).unwrap().cmdline,
            "console=ttyS0 rdinit=/init"
        );
    }

    fn request(root: &Path, image: &Path, id: &str) -> LaunchRequest {
        LaunchRequest {
            kernel_id: id.parse().unwrap(),
            platform: Mode::Dev,
            vcpus: 1,
            memory_mib: 256,
            image: image.to_path_buf(),
            cid: None,
            firmware: None,
            vsock: VsockDevice::Vhost,
            paused: true,
            qemu: launcher::DEFAULT_QEMU.into(),
            swtpm: DEFAULT_SWTPM.into(),
            state_root: root.to_path_buf(),
        }
    }

    #[test]
    fn plans_use_the_state_dir_and_a_free_cid() {
        let root = tempfile::tempdir().unwrap();
        let image = tempfile::tempdir().unwrap();
        std::fs::write(image.path().join(IMAGE_KERNEL), b"k").unwrap();
        std::fs::write(image.path().join(IMAGE_INITRD), b"i").unwrap();
        let a = plan(&request(root.path(), image.path(), "k1")).unwrap();
        assert_eq!(a.cid, launcher::FIRST_GUEST_CID);
        assert_eq!(a.state_dir, root.path().join("k1"));
        assert!(a
            .argv
            .iter()
            .any(|x| x.contains(&*root.path().join("k1/swtpm.sock").to_string_lossy())));
        // Pretend k1 is running (this very process stands in for its QEMU): k2 gets the next
        // cid, and asking for k1's is refused.
        let mut running = a.clone();
        running.qemu = ProcessRef::of(std::process::id());
        std::fs::create_dir_all(&running.state_dir).unwrap();
        write_instance(&running).unwrap();
        let b = plan(&request(root.path(), image.path(), "k2")).unwrap();
        assert_eq!(b.cid, launcher::FIRST_GUEST_CID + 1);
        let mut clash = request(root.path(), image.path(), "k2");
        clash.cid = Some(GuestCid::try_from(launcher::FIRST_GUEST_CID).unwrap());
        assert!(matches!(plan(&clash), Err(SupervisorError::CidInUse(3, _))));
        // A second launch of a live kernel is refused.
        assert!(matches!(
            launch(&request(root.path(), image.path(), "k1")),
            Err(SupervisorError::AlreadyRunning(_))
        ));
        assert_eq!(instances(root.path()).unwrap().len(), 1);
    }
}
