//! The launcher against the installed QEMU: every option of the SEV-SNP, TDX and dev
//! command lines is checked by QMP introspection of the QEMU binary itself (types, their
//! properties, CPU models, accelerators, TPM and chardev backends); options for QEMU
//! features newer than the installed binary are checked against the QEMU documentation's
//! property lists instead, and only while the installed QEMU really is older. Then a dev VM
//! is launched for real (paused, with a synthetic kernel when no image is built), listed,
//! logged and stopped through the `host` binary.
//!
//! QEMU and swtpm are required: these tests fail, not skip, without them (`cargo xtask
//! test` installs both).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test helpers outside #[test] functions: a failed unwrap is a failed test"
)]

use host::launcher::{self, GuestCid, LaunchSpec, Mode};
use host::supervisor::qmp::Qmp;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const HOST: &str = env!("CARGO_BIN_EXE_host");

/// QEMU features newer than some installed binaries, with the properties the QEMU
/// documentation gives them (`qapi/qom.json`, `SevCommonProperties` + `SevSnpGuestProperties`
/// since 9.1; `TdxGuestProperties` since 10.1; CPU models from `target/i386/cpu.c`). An
/// option naming one of these is accepted by the check only if the installed QEMU is older
/// than the version that introduced it: once QEMU is upgraded, the real binary decides.
const NEWER_QEMU: &[(&str, (u32, u32), &[&str])] = &[
    (
        "sev-snp-guest",
        (9, 1),
        &[
            "id",
            "sev-device",
            "cbitpos",
            "reduced-phys-bits",
            "kernel-hashes",
            "legacy-vm-type",
            "policy",
            "guest-visible-workarounds",
            "id-block",
            "id-auth",
            "author-key-enabled",
            "host-data",
            "vcek-disabled",
        ],
    ),
    (
        "tdx-guest",
        (10, 1),
        &[
            "id",
            "attributes",
            "sept-ve-disable",
            "mrconfigid",
            "mrowner",
            "mrownerconfig",
            "quote-generation-socket",
        ],
    ),
    // The SNP launch digest's VMSA depends on the vCPU model; every QEMU with SNP has it.
    ("cpu:EPYC-v4", (9, 1), &[]),
];

/// Fails the test with a useful message when a required program is missing.
fn require(program: &str) {
    let found = Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    assert!(
        found,
        "`{program}` is required by this test: run `cargo xtask test` (it installs \
         qemu-system-x86 and swtpm) or apt-get install it"
    );
}

fn installed_version() -> (u32, u32) {
    require(launcher::DEFAULT_QEMU);
    let out = Command::new(launcher::DEFAULT_QEMU)
        .arg("--version")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    // "QEMU emulator version 7.2.22 (Debian ...)"
    let v = text
        .split_whitespace()
        .skip_while(|w| *w != "version")
        .nth(1)
        .unwrap_or_else(|| panic!("no version in `{text}`"));
    let mut parts = v.split('.').map(|p| p.parse::<u32>().unwrap());
    (parts.next().unwrap(), parts.next().unwrap())
}

/// A QEMU started only to be asked questions over QMP (`-machine none -S`).
struct Introspect {
    child: Child,
    qmp: Qmp,
    _dir: tempfile::TempDir,
}

impl Drop for Introspect {
    fn drop(&mut self) {
        let _ = self.qmp.execute("quit");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Introspect {
    fn start() -> Introspect {
        require(launcher::DEFAULT_QEMU);
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("qmp.sock");
        let mut child = Command::new(launcher::DEFAULT_QEMU)
            .args(["-machine", "none", "-nodefaults", "-display", "none", "-S"])
            .arg("-qmp")
            .arg(format!("unix:{},server=on,wait=off", sock.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let qmp = loop {
            if let Ok(q) = Qmp::connect(&sock, Duration::from_secs(5)) {
                break q;
            }
            assert!(child.try_wait().unwrap().is_none(), "qemu exited");
            assert!(Instant::now() < deadline, "qemu never answered on qmp");
            std::thread::sleep(Duration::from_millis(20));
        };
        Introspect {
            child,
            qmp,
            _dir: dir,
        }
    }

    fn names(value: Value, key: &str) -> BTreeSet<String> {
        value
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|v| v.get(key)?.as_str().map(str::to_owned))
            .collect()
    }

    fn list(value: Value) -> BTreeSet<String> {
        value
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect()
    }
}

/// What the installed QEMU knows.
struct Knows {
    version: (u32, u32),
    types: BTreeSet<String>,
    machine_alias: BTreeMap<String, String>,
    cpus: BTreeSet<String>,
    tpm: BTreeSet<String>,
    chardevs: BTreeSet<String>,
    props: BTreeMap<String, BTreeSet<String>>,
}

impl Knows {
    fn ask() -> Knows {
        let version = installed_version();
        let mut q = Introspect::start();
        let types = Introspect::names(q.qmp.execute("qom-list-types").unwrap(), "name");
        let mut machine_alias = BTreeMap::new();
        for m in q.qmp.execute("query-machines").unwrap().as_array().unwrap() {
            let name = m["name"].as_str().unwrap().to_owned();
            if let Some(alias) = m.get("alias").and_then(Value::as_str) {
                machine_alias.insert(alias.to_owned(), name.clone());
            }
            machine_alias.insert(name.clone(), name);
        }
        let cpus = Introspect::names(q.qmp.execute("query-cpu-definitions").unwrap(), "name");
        let tpm = Introspect::list(q.qmp.execute("query-tpm-types").unwrap());
        let chardevs = Introspect::names(q.qmp.execute("query-chardev-backends").unwrap(), "name");
        // Properties of exactly the types the command lines name (asking QEMU about some
        // abstract types makes it abort, so no wider sweep).
        let mut wanted: BTreeSet<String> = ["kvm-accel".to_owned()].into();
        for mode in Mode::ALL {
            let argv = launcher::qemu_argv(&spec(mode)).unwrap();
            for (flag, value) in pairs(&argv) {
                let (kind, _) = split_opts(&value);
                match flag.as_str() {
                    "-object" | "-device" if types.contains(&kind) => {
                        wanted.insert(kind);
                    }
                    "-machine" => {
                        if let Some(name) = machine_alias.get(&kind) {
                            wanted.insert(format!("{name}-machine"));
                        }
                    }
                    _ => {}
                }
            }
        }
        let mut props = BTreeMap::new();
        for t in wanted {
            let list = q
                .qmp
                .execute_with("qom-list-properties", json!({ "typename": t }))
                .unwrap_or_else(|e| panic!("qom-list-properties {t}: {e}"));
            props.insert(t, Introspect::names(list, "name"));
        }
        Knows {
            version,
            types,
            machine_alias,
            cpus,
            tpm,
            chardevs,
            props,
        }
    }

    /// Accepts `what` with `props` if the installed QEMU lacks it but documents it for a
    /// newer version; panics otherwise.
    fn newer(&self, what: &str, props: &[String]) {
        let Some((_, since, documented)) = NEWER_QEMU.iter().find(|(n, _, _)| *n == what) else {
            panic!(
                "QEMU {:?} does not know `{what}`, and it is not a documented newer feature",
                self.version
            );
        };
        assert!(
            self.version < *since,
            "QEMU {:?} is at least {since:?} but does not know `{what}`",
            self.version
        );
        for p in props {
            assert!(
                documented.contains(&p.as_str()),
                "`{what}` property `{p}` is not in QEMU's documentation"
            );
        }
    }

    fn check_props(&self, qom_type: &str, what: &str, props: &[String], extra: &[&str]) {
        let known = self
            .props
            .get(qom_type)
            .unwrap_or_else(|| panic!("QEMU did not list the properties of `{qom_type}`"));
        for p in props {
            assert!(
                known.contains(p) || extra.contains(&p.as_str()),
                "QEMU {:?}: `{what}` has no property `{p}`",
                self.version
            );
        }
    }

    /// Checks one option and its value.
    fn check(&self, flag: &str, value: &str) {
        let (kind, props) = split_opts(value);
        match flag {
            "-machine" => {
                let name = self
                    .machine_alias
                    .get(&kind)
                    .unwrap_or_else(|| panic!("QEMU has no machine `{kind}`"));
                let qom = format!("{name}-machine");
                // `kernel-irqchip` is a legacy machine option QEMU forwards to the
                // accelerator (qemu_apply_legacy_machine_options).
                let (accel, machine): (Vec<_>, Vec<_>) =
                    props.into_iter().partition(|p| p == "kernel-irqchip");
                self.check_props(&qom, &kind, &machine, &[]);
                self.check_props("kvm-accel", "kvm accelerator", &accel, &[]);
            }
            "-accel" => assert!(
                self.types.contains(&format!("{kind}-accel")),
                "QEMU has no accelerator `{kind}`"
            ),
            "-cpu" if !self.cpus.contains(&kind) => {
                self.newer(&format!("cpu:{kind}"), &[]);
            }
            "-cpu" => {}
            "-object" | "-device" => {
                if self.types.contains(&kind) {
                    let id: &[&str] = &["id"];
                    self.check_props(&kind, &kind, &props, id);
                } else {
                    self.newer(&kind, &props);
                }
            }
            "-tpmdev" => assert!(self.tpm.contains(&kind), "QEMU has no tpm backend `{kind}`"),
            "-chardev" => assert!(
                self.chardevs.contains(&kind),
                "QEMU has no chardev backend `{kind}`"
            ),
            _ => {}
        }
    }
}

/// `type,key=value,…` → (type, keys), with `,,` an escaped comma inside a value.
fn split_opts(value: &str) -> (String, Vec<String>) {
    let unescaped = value.replace(",,", "\u{0}");
    let mut parts = unescaped.split(',');
    let kind = parts.next().unwrap_or_default().to_owned();
    let keys = parts
        .map(|p| p.split_once('=').map_or(p, |(k, _)| k).to_owned())
        .collect();
    (kind, keys)
}

fn spec(mode: Mode) -> LaunchSpec {
    let mut s = LaunchSpec::new(
        mode,
        "/img/vmlinuz".into(),
        "/img/initrd.img".into(),
        GuestCid::try_from(7).unwrap(),
        "/run/k1/swtpm.sock".into(),
    );
    s.qmp_socket = Some("/run/k1/qmp.sock".into());
    s.name = Some("k1".into());
    s
}

/// Every (flag, value) pair of an argv whose flag takes a value.
fn pairs(argv: &[String]) -> Vec<(String, String)> {
    const TAKES_VALUE: &[&str] = &[
        "-machine", "-accel", "-cpu", "-smp", "-m", "-object", "-device", "-chardev", "-tpmdev",
        "-bios", "-kernel", "-initrd", "-append", "-display", "-serial", "-qmp", "-name",
    ];
    let mut out = Vec::new();
    let mut it = argv.iter().skip(1);
    while let Some(flag) = it.next() {
        if TAKES_VALUE.contains(&flag.as_str()) {
            out.push((flag.clone(), it.next().unwrap().clone()));
        } else {
            assert!(
                ["-nodefaults", "-no-reboot", "-S"].contains(&flag.as_str()),
                "unexpected flag `{flag}`"
            );
        }
    }
    out
}

#[test]
fn every_option_is_known_to_the_installed_qemu_or_documented_for_a_newer_one() {
    let knows = Knows::ask();
    eprintln!("installed QEMU {:?}", knows.version);
    for mode in Mode::ALL {
        let argv = launcher::qemu_argv(&spec(mode)).unwrap();
        for (flag, value) in pairs(&argv) {
            knows.check(&flag, &value);
        }
    }
    // The check can fail: options QEMU does not have are caught.
    let caught = |flag: &str, value: &str| {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| knows.check(flag, value))).is_err()
    };
    assert!(caught("-device", "vhost-vsock-pci,guest-id=3"));
    assert!(caught(
        "-object",
        "sev-snp-guest,id=sev0,cbitpos=51,debug=on"
    ));
    assert!(caught("-machine", "q35,confidential-guest=sev0"));
    assert!(caught("-cpu", "EPYC-v99"));
    assert!(caught("-tpmdev", "swtpm,id=tpm0"));
}

/// The value after each occurrence of `flag`.
fn values<'a>(argv: &'a [String], flag: &str) -> Vec<&'a str> {
    argv.windows(2)
        .filter(|w| w[0] == flag)
        .map(|w| w[1].as_str())
        .collect()
}

fn prop<'a>(value: &'a str, key: &str) -> Option<&'a str> {
    value
        .split(',')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

#[test]
fn command_lines_follow_the_qemu_documentation_examples() {
    // docs/system/i386/amd-memory-encryption.rst (QEMU 9.1+), SEV-SNP:
    //   -machine ...,confidential-guest-support=sev0 \
    //   -object sev-snp-guest,id=sev0,cbitpos=47,reduced-phys-bits=1
    // with private memory from a memfd backend (memory-backend=ram1 on the machine).
    let snp = launcher::qemu_argv(&spec(Mode::SevSnp)).unwrap();
    let machine = values(&snp, "-machine")[0];
    let objects = values(&snp, "-object");
    let snp_obj = objects
        .iter()
        .find(|o| o.starts_with("sev-snp-guest,"))
        .unwrap();
    assert_eq!(
        prop(machine, "confidential-guest-support"),
        prop(snp_obj, "id")
    );
    for key in ["cbitpos", "reduced-phys-bits", "policy"] {
        assert!(prop(snp_obj, key).is_some(), "sev-snp-guest lacks {key}");
    }
    assert_eq!(prop(snp_obj, "kernel-hashes"), Some("on"));
    let memfd = objects
        .iter()
        .find(|o| o.starts_with("memory-backend-memfd,"))
        .unwrap();
    assert_eq!(prop(machine, "memory-backend"), prop(memfd, "id"));
    assert_eq!(values(&snp, "-accel"), ["kvm"]);

    // docs/system/i386/tdx.rst (QEMU 10.1+):
    //   -accel kvm -cpu host -object tdx-guest,id=tdx0 \
    //   -machine ...,kernel-irqchip=split,confidential-guest-support=tdx0 -bios OVMF.fd
    let tdx = launcher::qemu_argv(&spec(Mode::Tdx)).unwrap();
    let machine = values(&tdx, "-machine")[0];
    let tdx_obj = values(&tdx, "-object")[0];
    assert!(tdx_obj.starts_with("tdx-guest,"));
    assert_eq!(
        prop(machine, "confidential-guest-support"),
        prop(tdx_obj, "id")
    );
    assert_eq!(prop(machine, "kernel-irqchip"), Some("split"));
    assert_eq!(values(&tdx, "-accel"), ["kvm"]);
    assert_eq!(values(&tdx, "-cpu"), ["host"]);
    assert_eq!(values(&tdx, "-bios").len(), 1);

    // Both confidential lines put virtio behind the DMA API, as the docs require for
    // encrypted guests ("iommu_platform=on" for virtio devices).
    for argv in [&snp, &tdx] {
        let vsock = values(argv, "-device")
            .into_iter()
            .find(|d| d.starts_with("vhost-vsock-pci"))
            .unwrap();
        assert_eq!(prop(vsock, "iommu_platform"), Some("true"));
    }
}

/// An image directory for a dev VM: the built image if `ENCLAVE_IMAGE_DIR` names one, else a
/// synthetic bzImage whose setup header (Linux boot protocol 2.15, `Documentation/arch/x86/
/// boot.rst`) QEMU's loader accepts. The VM starts paused, so the kernel never runs; what is
/// checked is that QEMU accepts the whole command line and realizes every device.
fn image_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    if let Some(built) = std::env::var_os("ENCLAVE_IMAGE_DIR") {
        let built = PathBuf::from(built);
        return (dir, built);
    }
    let mut k = vec![0u8; 8192];
    k[0x1f1] = 1; // setup_sects: one 512-byte sector after the boot sector
    k[0x1fe] = 0x55; // boot_flag 0xAA55
    k[0x1ff] = 0xaa;
    k[0x202..0x206].copy_from_slice(b"HdrS");
    k[0x206..0x208].copy_from_slice(&0x020fu16.to_le_bytes()); // protocol 2.15
    k[0x211] = 0x01; // loadflags: LOADED_HIGH
    k[0x22c..0x230].copy_from_slice(&0x7fff_ffffu32.to_le_bytes()); // initrd_addr_max
    k[0x238..0x23c].copy_from_slice(&2048u32.to_le_bytes()); // cmdline_size
    std::fs::write(dir.path().join("vmlinuz"), k).unwrap();
    std::fs::write(dir.path().join("initrd.img"), [0u8; 512]).unwrap();
    std::fs::write(dir.path().join("cmdline"), "console=ttyS0 panic=-1\n").unwrap();
    let path = dir.path().to_path_buf();
    (dir, path)
}

fn host(root: &Path, args: &[&str]) -> std::process::Output {
    Command::new(HOST)
        .args(args)
        .arg("--state-root")
        .arg(root)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

fn json_of(out: &std::process::Output) -> Value {
    assert!(
        out.status.success(),
        "host failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn pid_alive(pid: u64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            let state = s
                .rsplit_once(')')
                .map(|(_, r)| r.trim_start().chars().next());
            !matches!(state, Some(Some('Z' | 'X')))
        })
        .unwrap_or(false)
}

#[test]
fn a_paused_dev_vm_launches_is_listed_logged_and_stopped() {
    require("swtpm");
    require(launcher::DEFAULT_QEMU);
    let root = tempfile::tempdir().unwrap();
    let (_keep, image) = image_dir();
    let image = image.to_str().unwrap();
    let launched = json_of(&host(
        root.path(),
        &[
            "launch",
            "--kernel-id",
            "k1",
            "--platform",
            "dev",
            "--vcpus",
            "1",
            "--memory",
            "256M",
            "--image",
            image,
            "--vsock",
            "none",
            "--paused",
            "--json",
        ],
    ));
    assert_eq!(launched["kernel_id"], "k1");
    assert_eq!(launched["cid"], 3);
    let qemu_pid = launched["qemu"]["pid"].as_u64().unwrap();
    let swtpm_pid = launched["swtpm"]["pid"].as_u64().unwrap();
    assert!(pid_alive(qemu_pid) && pid_alive(swtpm_pid));
    assert!(root.path().join("k1/tpm").is_dir());

    // A second kernel gets its own state directory, swtpm and the next CID.
    let second = json_of(&host(
        root.path(),
        &[
            "launch",
            "--kernel-id",
            "k2",
            "--platform",
            "dev",
            "--vcpus",
            "1",
            "--memory",
            "256",
            "--image",
            image,
            "--vsock",
            "none",
            "--paused",
            "--json",
        ],
    ));
    assert_eq!(second["cid"], 4);
    assert_ne!(second["swtpm"]["pid"], launched["swtpm"]["pid"]);

    let ps = json_of(&host(root.path(), &["ps", "--json"]));
    let states: Vec<(&str, &str)> = ps
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["kernel_id"].as_str().unwrap(),
                s["state"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(states, [("k1", "prelaunch"), ("k2", "prelaunch")]);
    // Launching a running kernel again is refused.
    let again = host(
        root.path(),
        &[
            "launch",
            "--kernel-id",
            "k1",
            "--platform",
            "dev",
            "--image",
            image,
        ],
    );
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already running"));

    let logs = json_of(&host(root.path(), &["logs", "k1", "--json"]));
    assert_eq!(logs["kernel_id"], "k1");
    assert!(logs["failure"].is_null());

    for id in ["k1", "k2"] {
        let stopped = json_of(&host(root.path(), &["stop", id, "--json"]));
        assert_eq!(stopped["how"], "quit");
    }
    assert!(!pid_alive(qemu_pid) && !pid_alive(swtpm_pid));
    let ps = json_of(&host(root.path(), &["ps", "--json"]));
    assert!(ps
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["state"] == "exited"));
    let stopped = json_of(&host(root.path(), &["stop", "k1", "--purge", "--json"]));
    assert_eq!(stopped["how"], "already-stopped");
    assert!(!root.path().join("k1").exists());
}

#[test]
fn a_dev_vm_with_vhost_vsock_starts_or_fails_naming_the_missing_device() {
    require("swtpm");
    require(launcher::DEFAULT_QEMU);
    let root = tempfile::tempdir().unwrap();
    let (_keep, image) = image_dir();
    let out = host(
        root.path(),
        &[
            "launch",
            "--kernel-id",
            "k1",
            "--platform",
            "dev",
            "--vcpus",
            "1",
            "--memory",
            "256M",
            "--image",
            image.to_str().unwrap(),
            "--paused",
            "--json",
        ],
    );
    if Path::new("/dev/vhost-vsock").exists() {
        let launched = json_of(&out);
        assert_eq!(launched["cid"], 3);
        json_of(&host(root.path(), &["stop", "k1", "--json"]));
        return;
    }
    // Without the host's vhost-vsock device QEMU refuses the vsock device, the last option,
    // after accepting every other one; the launch fails saying so and cleans up.
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("-device vhost-vsock-pci,guest-cid=3: vhost-vsock"),
        "{err}"
    );
    let ps = json_of(&host(root.path(), &["ps", "--json"]));
    assert_eq!(ps[0]["state"], "failed");
    let swtpm_pid = ps[0]["swtpm"]["pid"].as_u64().unwrap();
    assert!(
        !pid_alive(swtpm_pid),
        "swtpm left running after a failed launch"
    );
    let logs = json_of(&host(root.path(), &["logs", "k1", "--json"]));
    assert!(logs["console"].as_str().unwrap().contains("vhost-vsock"));
    assert!(logs["failure"].as_str().unwrap().contains("qemu exited"));
}
