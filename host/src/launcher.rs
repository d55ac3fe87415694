//! QEMU command lines for one confidential VM per governance kernel.
//!
//! This module only *builds* argv vectors ([`crate::supervisor`] runs them). Keeping it a
//! pure function lets every flag that matters to the measurement be unit-tested: with
//! `kernel-hashes=on` the kernel, initrd and command line are measured into the SEV-SNP
//! launch digest, so the cmdline here must be the one the reference values were computed
//! for (the image's `cmdline` file; see the `measurements` tooling). The integration test
//! `host/tests/qemu.rs` checks every option against what the installed QEMU accepts and
//! against the QEMU documentation's examples.
//!
//! Modes:
//! * `sev-snp`: AMD SEV-SNP, QEMU's `sev-snp-guest` object (QEMU ≥ 9.1) with private memory
//!   from a memfd backend, OVMF built for AMD SEV (the `AmdSevX64` platform, which carries the
//!   kernel-hashes table);
//! * `tdx`: Intel TDX, QEMU's `tdx-guest` object (QEMU ≥ 10.1) with a split irqchip and TDVF
//!   firmware;
//! * `dev`: plain QEMU under TCG with no TEE, for KEE1-L1 development; its evidence is
//!   software evidence that no L3 policy accepts.
//!
//! Every mode gets the same devices: a TPM CRB device backed by an swtpm socket, and
//! `vhost-vsock-pci` with the kernel's guest CID (the only I/O path, served by the host
//! proxy). The vsock device comes last, so that when a host lacks `/dev/vhost-vsock` QEMU's
//! error names it after every other option has been accepted.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The QEMU binary used unless told otherwise.
pub const DEFAULT_QEMU: &str = "qemu-system-x86_64";
/// Kernel command line unless told otherwise: serial console, and no reboot loop on panic.
pub const DEFAULT_APPEND: &str = "console=ttyS0 panic=-1";
/// Guest memory unless told otherwise.
pub const DEFAULT_MEMORY_MIB: u32 = 2048;
/// Guest vCPUs unless told otherwise.
pub const DEFAULT_VCPUS: u32 = 2;
/// OVMF AmdSev build as Debian/Ubuntu's `ovmf` package installs it.
pub const DEFAULT_SNP_FIRMWARE: &str = "/usr/share/ovmf/OVMF.amdsev.fd";
/// TDVF (OVMF IntelTdx build) as Ubuntu's `ovmf` package installs it.
pub const DEFAULT_TDX_FIRMWARE: &str = "/usr/share/ovmf/OVMF.inteltdx.fd";
/// Position of the C-bit (encryption bit) in a page-table entry on Milan and Genoa:
/// CPUID Fn8000_001F\[EBX\] bits 5:0 (AMD APM vol. 2, §15.34.1).
pub const SNP_CBITPOS: u32 = 51;
/// Physical address bits lost to memory encryption: CPUID Fn8000_001F\[EBX\] bits 11:6.
pub const SNP_REDUCED_PHYS_BITS: u32 = 1;
/// SEV-SNP guest policy (SEV-SNP firmware ABI, table "Guest Policy Structure"): bit 17
/// (reserved, must be one) and bit 16 (SMT allowed); debug (bit 19), migration agent
/// (bit 18) and single-socket (bit 20) off. The verifier's SNP reference values check
/// the same bits in the report.
pub const SNP_POLICY: u64 = 0x3_0000;
/// vCPU model for SEV-SNP guests; the launch digest depends on it (VMSA contents), so it
/// must match the vcpu type the reference values were computed with.
pub const SNP_CPU_MODEL: &str = "EPYC-v4";
/// First context id a guest may use: 0 and 1 are reserved, 2 is the host (`vsock(7)`).
pub const FIRST_GUEST_CID: u32 = 3;

/// Which kind of VM to launch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// AMD SEV-SNP.
    SevSnp,
    /// Intel TDX.
    Tdx,
    /// No TEE (KEE1-L1 development).
    Dev,
}

impl Mode {
    /// Every mode, as accepted on the command line.
    pub const ALL: [Mode; 3] = [Mode::SevSnp, Mode::Tdx, Mode::Dev];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Mode::SevSnp => "sev-snp",
            Mode::Tdx => "tdx",
            Mode::Dev => "dev",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Mode {
    type Err = LaunchError;
    /// `snp` is accepted for `sev-snp`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "snp" {
            return Ok(Mode::SevSnp);
        }
        Mode::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| LaunchError::UnknownMode(s.to_owned()))
    }
}

/// A guest's vsock context id: at least [`FIRST_GUEST_CID`], never `VMADDR_CID_ANY`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestCid(u32);

impl GuestCid {
    /// The number.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl TryFrom<u32> for GuestCid {
    type Error = LaunchError;
    fn try_from(cid: u32) -> Result<Self, Self::Error> {
        if cid < FIRST_GUEST_CID || cid == u32::MAX {
            Err(LaunchError::ReservedCid(cid))
        } else {
            Ok(GuestCid(cid))
        }
    }
}

/// Errors building a command line.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// "unknown platform `{0}`; use snp, tdx or dev".
    #[error("unknown platform `{0}`; use snp, tdx or dev")]
    UnknownMode(String),
    /// "vsock cid {0} is reserved; guests use 3 to 4294967294".
    #[error("vsock cid {0} is reserved; guests use 3 to 4294967294")]
    ReservedCid(u32),
    /// "{what} path `{path}` is not valid utf-8".
    #[error("{what} path `{path}` is not valid utf-8")]
    NonUtf8Path {
        /// Which path.
        what: &'static str,
        /// The path, lossily shown.
        path: String,
    },
    /// "{0} must be at least 1".
    #[error("{0} must be at least 1")]
    Zero(&'static str),
    /// "`{0}` is not a size; use MiB, or a number with an M or G suffix".
    #[error("`{0}` is not a size; use MiB, or a number with an M or G suffix")]
    BadSize(String),
}

/// The guest's vsock device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VsockDevice {
    /// `vhost-vsock-pci` served by the host kernel (`/dev/vhost-vsock`): the production path.
    Vhost,
    /// No vsock device: a console-only VM for checking that an image boots. Such a kernel
    /// can reach nothing, so it never unseals.
    None,
}

impl FromStr for VsockDevice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "vhost" => Ok(VsockDevice::Vhost),
            "none" => Ok(VsockDevice::None),
            other => Err(format!("unknown vsock device `{other}`; use vhost or none")),
        }
    }
}

/// Reads a memory size: plain MiB (`2048`), or `512M` / `4G`.
pub fn parse_memory_mib(text: &str) -> Result<u32, LaunchError> {
    let bad = || LaunchError::BadSize(text.to_owned());
    let t = text.trim();
    let (digits, factor) = match t.strip_suffix(['G', 'g']) {
        Some(d) => (d, 1024u32),
        None => (t.strip_suffix(['M', 'm']).unwrap_or(t), 1),
    };
    digits
        .parse::<u32>()
        .ok()
        .and_then(|n| n.checked_mul(factor))
        .ok_or_else(bad)
}

/// What to launch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchSpec {
    /// TEE kind.
    pub mode: Mode,
    /// Guest kernel (`-kernel`).
    pub kernel: PathBuf,
    /// Initramfs whose `/init` is the enclave (`-initrd`).
    pub initrd: PathBuf,
    /// Kernel command line (`-append`); measured under `kernel-hashes=on`.
    pub append: String,
    /// vsock context id of this kernel's CVM.
    pub cid: GuestCid,
    /// swtpm control socket (`swtpm socket --tpm2 --ctrl type=unixio,path=…`).
    pub tpm_socket: PathBuf,
    /// Firmware (`-bios`); `None` means the mode's default (none for `dev`).
    pub firmware: Option<PathBuf>,
    /// Guest memory.
    pub memory_mib: u32,
    /// Guest vCPUs.
    pub vcpus: u32,
    /// QEMU binary.
    pub qemu: PathBuf,
    /// The vsock device.
    pub vsock: VsockDevice,
    /// QMP control socket (`-qmp unix:…,server=on,wait=off`), for the supervisor.
    pub qmp_socket: Option<PathBuf>,
    /// VM name shown by QEMU (`-name`), normally the kernel id.
    pub name: Option<String>,
    /// Start with the vCPUs stopped (`-S`): everything is set up, nothing runs.
    pub start_paused: bool,
}

impl LaunchSpec {
    /// A spec with the default command line, memory, vCPUs, firmware and QEMU binary.
    pub fn new(
        mode: Mode,
        kernel: PathBuf,
        initrd: PathBuf,
        cid: GuestCid,
        tpm_socket: PathBuf,
    ) -> Self {
        Self {
            mode,
            kernel,
            initrd,
            append: DEFAULT_APPEND.to_owned(),
            cid,
            tpm_socket,
            firmware: None,
            memory_mib: DEFAULT_MEMORY_MIB,
            vcpus: DEFAULT_VCPUS,
            qemu: PathBuf::from(DEFAULT_QEMU),
            vsock: VsockDevice::Vhost,
            qmp_socket: None,
            name: None,
            start_paused: false,
        }
    }
}

fn utf8<'a>(what: &'static str, path: &'a Path) -> Result<&'a str, LaunchError> {
    path.to_str().ok_or_else(|| LaunchError::NonUtf8Path {
        what,
        path: path.display().to_string(),
    })
}

/// A value inside a QEMU `key=value,…` option list: commas are doubled (QEMU `QemuOpts`).
fn opt(value: &str) -> String {
    value.replace(',', ",,")
}

/// The QEMU argv (program name first) that launches `spec`.
pub fn qemu_argv(spec: &LaunchSpec) -> Result<Vec<String>, LaunchError> {
    if spec.memory_mib == 0 {
        return Err(LaunchError::Zero("memory"));
    }
    if spec.vcpus == 0 {
        return Err(LaunchError::Zero("vcpus"));
    }
    let mem = format!("{}M", spec.memory_mib);
    let mut argv: Vec<String> = vec![utf8("qemu", &spec.qemu)?.to_owned()];
    let mut push = |args: &[&str]| argv.extend(args.iter().map(|a| (*a).to_owned()));
    push(&[
        "-nodefaults",
        "-no-reboot",
        "-display",
        "none",
        "-serial",
        "stdio",
    ]);
    if let Some(name) = &spec.name {
        push(&["-name", &opt(name)]);
    }
    if let Some(qmp) = &spec.qmp_socket {
        let qmp = format!("unix:{},server=on,wait=off", opt(utf8("qmp socket", qmp)?));
        push(&["-qmp", &qmp]);
    }
    if spec.start_paused {
        push(&["-S"]);
    }

    // Platform: machine, accelerator, CPU, memory, TEE object, firmware.
    let firmware = match spec.mode {
        Mode::SevSnp => Some(
            spec.firmware
                .as_deref()
                .unwrap_or(Path::new(DEFAULT_SNP_FIRMWARE)),
        ),
        Mode::Tdx => Some(
            spec.firmware
                .as_deref()
                .unwrap_or(Path::new(DEFAULT_TDX_FIRMWARE)),
        ),
        Mode::Dev => spec.firmware.as_deref(),
    };
    let smp = spec.vcpus.to_string();
    match spec.mode {
        Mode::SevSnp => {
            let snp = format!(
                "sev-snp-guest,id=sev0,cbitpos={SNP_CBITPOS},reduced-phys-bits={SNP_REDUCED_PHYS_BITS},\
                 policy={SNP_POLICY:#x},kernel-hashes=on"
            );
            push(&[
                "-machine",
                "q35,confidential-guest-support=sev0,memory-backend=ram1",
                "-accel",
                "kvm",
                "-cpu",
                SNP_CPU_MODEL,
                "-smp",
                &smp,
                "-m",
                &mem,
                "-object",
                &format!("memory-backend-memfd,id=ram1,size={mem},share=true,prealloc=false"),
                "-object",
                &snp,
            ]);
        }
        Mode::Tdx => push(&[
            "-machine",
            "q35,kernel-irqchip=split,confidential-guest-support=tdx0",
            "-accel",
            "kvm",
            "-cpu",
            "host",
            "-smp",
            &smp,
            "-m",
            &mem,
            "-object",
            "tdx-guest,id=tdx0",
        ]),
        Mode::Dev => push(&[
            "-machine", "q35", "-accel", "tcg", "-cpu", "max", "-smp", &smp, "-m", &mem,
        ]),
    }
    if let Some(fw) = firmware {
        push(&["-bios", utf8("firmware", fw)?]);
    }

    // Direct kernel boot (measured with kernel-hashes=on under SEV-SNP).
    push(&[
        "-kernel",
        utf8("kernel", &spec.kernel)?,
        "-initrd",
        utf8("initrd", &spec.initrd)?,
        "-append",
        &spec.append,
    ]);

    let tpm = format!(
        "socket,id=chrtpm,path={}",
        opt(utf8("tpm socket", &spec.tpm_socket)?)
    );
    push(&[
        "-chardev",
        &tpm,
        "-tpmdev",
        "emulator,id=tpm0,chardev=chrtpm",
        "-device",
        "tpm-crb,tpmdev=tpm0",
    ]);

    // vsock: the guest's only I/O path. Confidential guests need virtio to go through the
    // DMA API (bounce buffers in shared memory), hence iommu_platform on a modern device.
    let vsock = match (spec.vsock, spec.mode) {
        (VsockDevice::None, _) => None,
        (VsockDevice::Vhost, Mode::SevSnp | Mode::Tdx) => Some(format!(
            "vhost-vsock-pci,guest-cid={},disable-legacy=on,iommu_platform=true",
            spec.cid.get()
        )),
        (VsockDevice::Vhost, Mode::Dev) => {
            Some(format!("vhost-vsock-pci,guest-cid={}", spec.cid.get()))
        }
    };
    if let Some(vsock) = vsock {
        push(&["-device", &vsock]);
    }
    Ok(argv)
}

/// `argv` as one line a POSIX shell reads back into the same words.
pub fn shell_line(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            let plain = !a.is_empty()
                && a.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_-./,=:@%+".contains(&b));
            if plain {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(mode: Mode) -> LaunchSpec {
        LaunchSpec::new(
            mode,
            "/img/vmlinuz".into(),
            "/img/initrd.img".into(),
            GuestCid::try_from(7).unwrap(),
            "/run/k1/swtpm.sock".into(),
        )
    }

    /// The value following `flag` each time it occurs.
    fn values<'a>(argv: &'a [String], flag: &str) -> Vec<&'a str> {
        argv.windows(2)
            .filter(|w| w[0] == flag)
            .map(|w| w[1].as_str())
            .collect()
    }

    fn common(argv: &[String]) {
        assert_eq!(argv[0], DEFAULT_QEMU);
        assert_eq!(values(argv, "-kernel"), ["/img/vmlinuz"]);
        assert_eq!(values(argv, "-initrd"), ["/img/initrd.img"]);
        assert_eq!(values(argv, "-append"), [DEFAULT_APPEND]);
        assert_eq!(values(argv, "-m"), ["2048M"]);
        assert_eq!(values(argv, "-smp"), ["2"]);
        assert_eq!(
            values(argv, "-chardev"),
            ["socket,id=chrtpm,path=/run/k1/swtpm.sock"]
        );
        assert_eq!(values(argv, "-tpmdev"), ["emulator,id=tpm0,chardev=chrtpm"]);
        let devices = values(argv, "-device");
        assert!(devices.contains(&"tpm-crb,tpmdev=tpm0"));
        assert!(devices
            .iter()
            .any(|d| d.starts_with("vhost-vsock-pci,guest-cid=7")));
        assert!(argv.contains(&"-nodefaults".to_owned()));
        assert!(argv.contains(&"-no-reboot".to_owned()));
    }

    #[test]
    fn sev_snp_argv() {
        let argv = qemu_argv(&spec(Mode::SevSnp)).unwrap();
        common(&argv);
        assert_eq!(
            values(&argv, "-machine"),
            ["q35,confidential-guest-support=sev0,memory-backend=ram1"]
        );
        assert_eq!(
            values(&argv, "-object"),
            [
                "memory-backend-memfd,id=ram1,size=2048M,share=true,prealloc=false",
                "sev-snp-guest,id=sev0,cbitpos=51,reduced-phys-bits=1,policy=0x30000,kernel-hashes=on",
            ]
        );
        assert_eq!(values(&argv, "-accel"), ["kvm"]);
        assert_eq!(values(&argv, "-cpu"), [SNP_CPU_MODEL]);
        assert_eq!(values(&argv, "-bios"), [DEFAULT_SNP_FIRMWARE]);
        assert!(values(&argv, "-device")
            .contains(&"vhost-vsock-pci,guest-cid=7,disable-legacy=on,iommu_platform=true"));
    }

    #[test]
    fn tdx_argv() {
        let mut s = spec(Mode::Tdx);
        s.firmware = Some("/fw/TDVF.fd".into());
        let argv = qemu_argv(&s).unwrap();
        common(&argv);
        assert_eq!(
            values(&argv, "-machine"),
            ["q35,kernel-irqchip=split,confidential-guest-support=tdx0"]
        );
        assert_eq!(values(&argv, "-object"), ["tdx-guest,id=tdx0"]);
        assert_eq!(values(&argv, "-accel"), ["kvm"]);
        assert_eq!(values(&argv, "-bios"), ["/fw/TDVF.fd"]);
        assert!(!argv.iter().any(|a| a.contains("sev")));
    }

    #[test]
    fn dev_argv_has_no_tee() {
        let argv = qemu_argv(&spec(Mode::Dev)).unwrap();
        common(&argv);
        assert_eq!(values(&argv, "-machine"), ["q35"]);
        assert_eq!(values(&argv, "-accel"), ["tcg"]);
        assert!(values(&argv, "-object").is_empty());
        assert!(values(&argv, "-bios").is_empty());
        assert!(!argv
            .iter()
            .any(|a| a.contains("confidential-guest-support")));
        // The vsock device is the last option: QEMU reports it last if the host lacks it.
        assert_eq!(
            argv[argv.len() - 2..],
            ["-device", "vhost-vsock-pci,guest-cid=7"]
        );
    }

    #[test]
    fn supervisor_options_and_console_only_vms() {
        let mut s = spec(Mode::Dev);
        s.vsock = VsockDevice::None;
        s.qmp_socket = Some("/run/k,1/qmp.sock".into());
        s.name = Some("k1".into());
        s.start_paused = true;
        let argv = qemu_argv(&s).unwrap();
        assert!(!argv.iter().any(|a| a.contains("vsock")));
        assert_eq!(
            values(&argv, "-qmp"),
            ["unix:/run/k,,1/qmp.sock,server=on,wait=off"]
        );
        assert_eq!(values(&argv, "-name"), ["k1"]);
        assert!(argv.contains(&"-S".to_owned()));
    }

    #[test]
    fn memory_sizes_and_platform_names() {
        assert_eq!(parse_memory_mib("2048").unwrap(), 2048);
        assert_eq!(parse_memory_mib("512M").unwrap(), 512);
        assert_eq!(parse_memory_mib("4G").unwrap(), 4096);
        assert!(parse_memory_mib("4T").is_err());
        assert!(parse_memory_mib("9999999G").is_err());
        assert_eq!("snp".parse::<Mode>().unwrap(), Mode::SevSnp);
        assert_eq!("vhost".parse::<VsockDevice>().unwrap(), VsockDevice::Vhost);
        assert!("virtio".parse::<VsockDevice>().is_err());
    }

    #[test]
    fn overrides_are_applied() {
        let mut s = spec(Mode::SevSnp);
        s.memory_mib = 4096;
        s.vcpus = 4;
        s.append = "console=ttyS0 quiet".into();
        s.qemu = "/opt/qemu/bin/qemu-system-x86_64".into();
        s.tpm_socket = "/run/a,b/swtpm.sock".into();
        let argv = qemu_argv(&s).unwrap();
        assert_eq!(argv[0], "/opt/qemu/bin/qemu-system-x86_64");
        assert_eq!(values(&argv, "-m"), ["4096M"]);
        assert_eq!(values(&argv, "-smp"), ["4"]);
        assert_eq!(values(&argv, "-append"), ["console=ttyS0 quiet"]);
        assert!(values(&argv, "-object")[0].contains("size=4096M"));
        // A comma in a path must not start a new QEMU option.
        assert_eq!(
            values(&argv, "-chardev"),
            ["socket,id=chrtpm,path=/run/a,,b/swtpm.sock"]
        );
    }

    #[test]
    fn bad_inputs_are_refused() {
        for cid in [0, 1, 2, u32::MAX] {
            assert!(matches!(
                GuestCid::try_from(cid),
                Err(LaunchError::ReservedCid(_))
            ));
        }
        assert!(GuestCid::try_from(3).is_ok());
        let mut s = spec(Mode::Dev);
        s.memory_mib = 0;
        assert!(matches!(qemu_argv(&s), Err(LaunchError::Zero("memory"))));
        let mut s = spec(Mode::Dev);
        s.vcpus = 0;
        assert!(matches!(qemu_argv(&s), Err(LaunchError::Zero("vcpus"))));
        assert!(matches!(
            "sev".parse::<Mode>(),
            Err(LaunchError::UnknownMode(_))
        ));
        for m in Mode::ALL {
            assert_eq!(m.name().parse::<Mode>().unwrap(), m);
        }
    }

    #[test]
    fn non_utf8_paths_are_refused() {
        use std::os::unix::ffi::OsStrExt;
        let mut s = spec(Mode::Dev);
        s.kernel = PathBuf::from(std::ffi::OsStr::from_bytes(b"/img/\xff"));
        assert!(matches!(
            qemu_argv(&s),
            Err(LaunchError::NonUtf8Path { what: "kernel", .. })
        ));
    }

    #[test]
    fn shell_line_quotes_what_needs_it() {
        let argv: Vec<String> = ["qemu", "-append", "console=ttyS0 panic=-1", "it's", ""]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        assert_eq!(
            shell_line(&argv),
            r#"qemu -append 'console=ttyS0 panic=-1' 'it'\''s' ''"#
        );
    }
}
