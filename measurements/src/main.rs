//! `measure`: expected launch measurements of a confidential VM, computed from its files.
//!
//! Exit codes: 0 success, 1 the measurement could not be computed (the message says why),
//! 2 bad arguments.

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use measurements::snp::{self, hashes::SevHashes, vcpu, vmsa::VmmType, SnpInputs};
use measurements::tdx::{self, linux, InitrdArg, PageOrder};
use ovmf::Ovmf;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "measure",
    version,
    about = "Expected launch measurements (SEV-SNP, TDX, vTPM) computed offline from an image",
    long_about = "Expected launch measurements computed offline from the firmware, kernel, initrd \
and command line of a confidential VM.\n\n\
  measure snp --mode snp --vcpus 4 --vcpu-type EPYC-Milan --ovmf OVMF.fd\n\
      the SEV-SNP launch digest; same flags and output as sev-snp-measure 0.0.13\n\
  measure tdx --ovmf OVMF.fd --kernel vmlinuz --initrd initrd.img --append 'console=ttyS0'\n\
      TDX MRTD and the RTMR1/RTMR2 of OVMF direct boot\n\
  measure ovmf OVMF.fd --json\n\
      what the firmware declares: footer GUID table, SEV metadata, TDVF metadata\n\
  measure reference --image target/image --ovmf OVMF.fd --vcpus 2,4\n\
      the reference-values JSON the verifier loads (SNP, TDX, vTPM PCRs 4 and 9)\n\n\
Exit codes: 0 success, 1 measurement failed (the message says why), 2 bad arguments."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// AMD SEV/SEV-ES/SEV-SNP launch digest (drop-in for `sev-snp-measure`).
    Snp(SnpArgs),
    /// Intel TDX MRTD and direct-boot RTMR1/RTMR2.
    Tdx(TdxArgs),
    /// Show what an OVMF image declares.
    Ovmf(OvmfArgs),
    /// Write the reference values of an image built by `image build`.
    Reference(ReferenceArgs),
}

#[derive(Args)]
struct ReferenceArgs {
    /// Image directory (vmlinuz, initrd.img, cmdline, manifest.json).
    #[arg(long, value_name = "DIR")]
    image: PathBuf,
    /// Firmware for both SEV-SNP and TDX (or give --snp-ovmf / --tdx-ovmf).
    #[arg(long, value_name = "PATH")]
    ovmf: Option<PathBuf>,
    /// Firmware for SEV-SNP (an AmdSev build binds the kernel).
    #[arg(long, value_name = "PATH")]
    snp_ovmf: Option<PathBuf>,
    /// Firmware for TDX.
    #[arg(long, value_name = "PATH")]
    tdx_ovmf: Option<PathBuf>,
    /// vCPU counts to accept (repeat or comma-separate; one SNP digest each).
    #[arg(long, value_name = "N", value_delimiter = ',', default_value = "1")]
    vcpus: Vec<u32>,
    /// vCPU model for the SNP VMSAs.
    #[arg(long, value_name = "CPUTYPE", default_value = "EPYC-Milan",
          value_parser = clap::builder::PossibleValuesParser::new(vcpu::VCPU_TYPES.iter().map(|t| t.0)))]
    vcpu_type: String,
    /// SEV_FEATURES of the VMSAs.
    #[arg(long, value_name = "VALUE", default_value = "0x1", value_parser = measurements::parse_int_auto)]
    guest_features: u64,
    /// Guest memory in MiB (QEMU before 10.2 writes initrd placement into the kernel).
    #[arg(long, value_name = "MIB", default_value_t = 2048)]
    memory_mib: u64,
    /// QEMU version that launches the guest.
    #[arg(long, value_name = "VERSION", default_value = "7.2")]
    qemu_version: String,
    /// Order in which the TDX host adds and extends firmware pages.
    #[arg(long, value_enum, default_value = "single")]
    page_order: OrderArg,
    /// Where edk2 puts `initrd=initrd` in the measured command line.
    #[arg(long, value_enum, default_value = "suffix")]
    initrd_arg: InitrdArgArg,
    /// Write to this file instead of stdout.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

#[derive(Args)]
struct SnpArgs {
    /// Print `Calculated <MODE> guest measurement: ...`.
    #[arg(short, long)]
    verbose: bool,
    /// Guest mode.
    #[arg(long, value_parser = ["sev", "seves", "snp", "snp:ovmf-hash", "snp:svsm"])]
    mode: String,
    /// Number of guest vcpus.
    #[arg(long, value_name = "N")]
    vcpus: Option<u32>,
    /// Type of guest vcpu (a QEMU CPU model name, e.g. EPYC-Milan, EPYC-Genoa, EPYC-Turin).
    #[arg(long, value_name = "CPUTYPE",
          value_parser = clap::builder::PossibleValuesParser::new(vcpu::VCPU_TYPES.iter().map(|t| t.0)))]
    vcpu_type: Option<String>,
    /// Guest vcpu signature value (CPUID 1 EAX; 0x prefix for hex).
    #[arg(long, value_name = "VALUE", value_parser = parse_u32_auto)]
    vcpu_sig: Option<u32>,
    /// Guest vcpu family.
    #[arg(long, value_name = "FAMILY")]
    vcpu_family: Option<u32>,
    /// Guest vcpu model.
    #[arg(long, value_name = "MODEL")]
    vcpu_model: Option<u32>,
    /// Guest vcpu stepping.
    #[arg(long, value_name = "STEPPING")]
    vcpu_stepping: Option<u32>,
    /// Type of guest vmm (QEMU, ec2, gce).
    #[arg(long, value_name = "VMMTYPE", default_value = "QEMU")]
    vmm_type: String,
    /// OVMF file to calculate hash from.
    #[arg(long, value_name = "PATH")]
    ovmf: PathBuf,
    /// Kernel file to calculate hash from.
    #[arg(long, value_name = "PATH")]
    kernel: Option<PathBuf>,
    /// Initrd file to calculate hash from (use with --kernel).
    #[arg(long, value_name = "PATH")]
    initrd: Option<PathBuf>,
    /// Kernel command line to calculate hash from (use with --kernel).
    #[arg(long, value_name = "CMDLINE", allow_hyphen_values = true)]
    append: Option<String>,
    /// Guest kernel features expected to be included (SEV_FEATURES; default 0x1).
    #[arg(long, value_name = "VALUE", default_value = "0x1", value_parser = measurements::parse_int_auto)]
    guest_features: u64,
    /// Measurement output format.
    #[arg(long, value_parser = ["hex", "base64"], default_value = "hex")]
    output_format: String,
    /// Precalculated hash of the OVMF binary (hex string).
    #[arg(long, value_name = "HASH")]
    snp_ovmf_hash: Option<String>,
    /// Write measured VMSAs to vmsa<N>.bin (seves and snp modes only).
    #[arg(long)]
    dump_vmsa: bool,
    /// SVSM binary (snp:svsm mode, not supported by this tool).
    #[arg(long, value_name = "PATH")]
    svsm: Option<PathBuf>,
    /// Size of the OVMF_VARS file (snp:svsm mode, not supported by this tool).
    #[arg(long, value_name = "SIZE")]
    vars_size: Option<u64>,
    /// OVMF_VARS file (snp:svsm mode, not supported by this tool).
    #[arg(long, value_name = "PATH")]
    vars_file: Option<PathBuf>,
    /// Print one JSON object instead of the bare digest.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum OrderArg {
    /// Upstream KVM: add and extend page by page.
    Single,
    /// Early TDX host kernels: add a section's pages, then extend them.
    Two,
}

#[derive(Clone, Copy, ValueEnum)]
enum InitrdArgArg {
    /// `<cmdline> initrd=initrd` (edk2 up to stable202505).
    Suffix,
    /// `initrd=initrd <cmdline>` (edk2 stable202508 and later).
    Prefix,
}

#[derive(Args)]
struct TdxArgs {
    /// TDVF (OVMF) firmware image.
    #[arg(long, value_name = "PATH")]
    ovmf: PathBuf,
    /// Kernel for direct boot (gives RTMR1 and RTMR2).
    #[arg(long, value_name = "PATH")]
    kernel: Option<PathBuf>,
    /// initrd for direct boot.
    #[arg(long, value_name = "PATH", requires = "kernel")]
    initrd: Option<PathBuf>,
    /// Kernel command line (QEMU `-append`).
    #[arg(
        long,
        value_name = "CMDLINE",
        default_value = "",
        allow_hyphen_values = true
    )]
    append: String,
    /// Guest memory in MiB (QEMU before 10.2 writes initrd placement into the kernel header).
    #[arg(long, value_name = "MIB", default_value_t = 2048)]
    memory_mib: u64,
    /// QEMU version that launches the TD (`MAJOR.MINOR`); before 10.2 it patches the kernel.
    #[arg(long, value_name = "VERSION", default_value = "10.0")]
    qemu_version: String,
    /// Order in which the host adds and extends firmware pages.
    #[arg(long, value_enum, default_value = "single")]
    page_order: OrderArg,
    /// Where edk2 puts `initrd=initrd` in the measured command line.
    #[arg(long, value_enum, default_value = "suffix")]
    initrd_arg: InitrdArgArg,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct OvmfArgs {
    /// Firmware image.
    file: PathBuf,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

fn parse_u32_auto(s: &str) -> Result<u32, String> {
    let v = measurements::parse_int_auto(s)?;
    u32::try_from(v).map_err(|_| format!("`{s}` does not fit in 32 bits"))
}

/// An error the user caused with the arguments (exit 2), as opposed to a failed measurement.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Usage(String);

fn read(path: &Path, what: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {what} `{}`", path.display()))
}

fn load_ovmf(path: &Path) -> anyhow::Result<Ovmf> {
    Ovmf::parse(read(path, "OVMF file")?)
        .with_context(|| format!("cannot parse OVMF file `{}`", path.display()))
}

fn snp_sig(a: &SnpArgs, vmm: VmmType) -> Result<Option<vcpu::CpuSig>, Usage> {
    if a.mode == "sev" {
        return Ok(Some(vcpu::CpuSig(0)));
    }
    if let Some(family) = a.vcpu_family.filter(|f| *f != 0) {
        let (Some(model), Some(stepping)) = (a.vcpu_model, a.vcpu_stepping) else {
            return Err(Usage(
                "--vcpu-family needs --vcpu-model and --vcpu-stepping".into(),
            ));
        };
        return Ok(Some(vcpu::CpuSig::from_fms(family, model, stepping)));
    }
    if let Some(sig) = a.vcpu_sig.filter(|s| *s != 0) {
        return Ok(Some(vcpu::CpuSig(sig)));
    }
    if let Some(t) = &a.vcpu_type {
        return Ok(vcpu::CpuSig::from_type(t));
    }
    if vmm == VmmType::Qemu {
        return Err(Usage(format!(
            "missing --vcpu-type or --vcpu-sig or --vcpu-family in guest mode '{}'",
            a.mode
        )));
    }
    Ok(None)
}

fn run_snp(a: &SnpArgs) -> anyhow::Result<()> {
    if a.mode == "snp:ovmf-hash" {
        let hash = snp::snp_ovmf_hash(&load_ovmf(&a.ovmf)?)?;
        if a.json {
            println!(
                "{}",
                serde_json::json!({"mode": a.mode, "ovmf_hash": hex::encode(hash)})
            );
        } else {
            println!("{}", hex::encode(hash));
        }
        return Ok(());
    }
    if a.initrd.is_some() && a.kernel.is_none() {
        return Err(Usage("--kernel required when using --initrd".into()).into());
    }
    if a.append.as_deref().is_some_and(|s| !s.is_empty()) && a.kernel.is_none() {
        return Err(Usage("--kernel required when using --append".into()).into());
    }
    if a.mode != "sev" && a.vcpus.is_none() {
        return Err(Usage(format!("missing --vcpus N in guest mode '{}'", a.mode)).into());
    }
    let vmm = VmmType::from_name(&a.vmm_type)
        .ok_or_else(|| Usage(format!("unknown VMM type '{}'", a.vmm_type)))?;
    let sig = snp_sig(a, vmm)?;
    if a.mode == "snp:svsm" || a.svsm.is_some() || a.vars_size.is_some() || a.vars_file.is_some() {
        return Err(Usage("snp:svsm mode is not supported by this tool".into()).into());
    }
    if a.dump_vmsa && a.mode == "sev" {
        return Err(Usage("--dump-vmsa is not availibe in the selected mode".into()).into());
    }
    let ovmf = load_ovmf(&a.ovmf)?;
    let hashes = match &a.kernel {
        Some(k) if !k.as_os_str().is_empty() => {
            let initrd = a.initrd.as_deref().filter(|i| !i.as_os_str().is_empty());
            let h = SevHashes::from_files(k, initrd, a.append.as_deref())
                .with_context(|| format!("cannot read kernel `{}` or its initrd", k.display()))?;
            Some(h)
        }
        _ => None,
    };
    let vcpus = a.vcpus.unwrap_or(0);
    let (name, digest): (&str, Vec<u8>) = match a.mode.as_str() {
        "sev" => (
            "SEV",
            snp::sev_launch_digest(&ovmf, hashes.as_ref())?.to_vec(),
        ),
        "seves" => {
            let d = snp::seves_launch_digest(&ovmf, hashes.as_ref(), vcpus, sig, vmm)?;
            ("SEV_ES", d.to_vec())
        }
        _ => {
            let ovmf_hash = match &a.snp_ovmf_hash {
                Some(h) if !h.is_empty() => {
                    let bytes = hex::decode(h)
                        .ok()
                        .and_then(|b| <[u8; 48]>::try_from(b).ok())
                        .ok_or_else(|| {
                            Usage(format!("--snp-ovmf-hash `{h}` is not 48 bytes of hex"))
                        })?;
                    Some(bytes)
                }
                _ => None,
            };
            let inputs = SnpInputs {
                ovmf: &ovmf,
                vcpus,
                vcpu_sig: sig,
                vmm,
                guest_features: a.guest_features,
                hashes: hashes.clone(),
                ovmf_hash,
            };
            ("SEV_SNP", snp::snp_launch_digest(&inputs)?.to_vec())
        }
    };
    if a.dump_vmsa {
        dump_vmsa(&ovmf, a, vcpus, sig, vmm)?;
    }
    let text = match a.output_format.as_str() {
        "base64" => {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(&digest)
        }
        _ => hex::encode(&digest),
    };
    if a.json {
        let v = serde_json::json!({
            "mode": a.mode,
            "measurement": text,
            "vcpus": vcpus,
            "vcpu_sig": sig.map(|s| format!("{:#x}", s.0)),
            "vmm_type": a.vmm_type,
            "guest_features": format!("{:#x}", a.guest_features),
            "kernel_hashes": hashes.as_ref().map(|h| serde_json::json!({
                "kernel_sha256": hex::encode(h.kernel),
                "initrd_sha256": hex::encode(h.initrd),
                "cmdline_sha256": hex::encode(h.cmdline),
            })),
        });
        println!("{v}");
    } else if a.verbose {
        println!("Calculated {name} guest measurement: {text}");
    } else {
        println!("{text}");
    }
    Ok(())
}

fn dump_vmsa(
    ovmf: &Ovmf,
    a: &SnpArgs,
    vcpus: u32,
    sig: Option<vcpu::CpuSig>,
    vmm: VmmType,
) -> anyhow::Result<()> {
    let features = if a.mode == "seves" {
        0
    } else {
        a.guest_features
    };
    let eip = ovmf.sev_es_reset().map(|r| r.eip).unwrap_or(0);
    let sig = sig.map(|s| s.0).unwrap_or(0);
    for i in 0..vcpus {
        let page = if i == 0 {
            snp::vmsa::save_area(snp::vmsa::BSP_EIP, features, sig, vmm)
        } else {
            snp::vmsa::save_area(eip, features, sig, vmm)
        };
        std::fs::write(format!("vmsa{i}.bin"), page).context("writing the VMSA dump")?;
    }
    Ok(())
}

fn qemu_patches(version: &str) -> Result<bool, Usage> {
    let mut parts = version.split('.').map(str::parse::<u32>);
    match (parts.next(), parts.next()) {
        (Some(Ok(major)), Some(Ok(minor))) => Ok((major, minor) < (10, 2)),
        (Some(Ok(major)), None) => Ok(major < 10),
        _ => Err(Usage(format!(
            "--qemu-version `{version}` is not MAJOR.MINOR"
        ))),
    }
}

fn run_tdx(a: &TdxArgs) -> anyhow::Result<()> {
    let ovmf = load_ovmf(&a.ovmf)?;
    let order = match a.page_order {
        OrderArg::Single => PageOrder::SinglePass,
        OrderArg::Two => PageOrder::TwoPass,
    };
    let mrtd = tdx::mrtd(&ovmf, order)?;
    let mut rtmrs = None;
    if let Some(k) = &a.kernel {
        let kernel = read(k, "kernel")?;
        let initrd = a.initrd.as_deref().map(|p| read(p, "initrd")).transpose()?;
        let initrd_bytes = match &initrd {
            Some(i) => u32::try_from(i.len()).context("initrd is larger than 4 GiB")?,
            None => 0,
        };
        let qemu_patch = qemu_patches(&a.qemu_version)?.then_some(linux::QemuLoad {
            memory_bytes: a.memory_mib.saturating_mul(1024 * 1024),
            initrd_bytes,
            acpi_data_size: linux::ACPI_DATA_SIZE,
        });
        rtmrs = Some(tdx::direct_boot_log(&tdx::DirectBoot {
            kernel: &kernel,
            initrd: initrd.as_deref(),
            cmdline: &a.append,
            qemu_patch,
            initrd_arg: match a.initrd_arg {
                InitrdArgArg::Suffix => InitrdArg::Suffix,
                InitrdArgArg::Prefix => InitrdArg::Prefix,
            },
        })?);
    }
    let hexes = |v: &[tdx::Mr]| v.iter().map(hex::encode).collect::<Vec<_>>();
    if a.json {
        let v = serde_json::json!({
            "mrtd": hex::encode(mrtd),
            "rtmr1": rtmrs.as_ref().map(|l| hex::encode(tdx::replay(&l.rtmr1))),
            "rtmr2": rtmrs.as_ref().map(|l| hex::encode(tdx::replay(&l.rtmr2))),
            "rtmr1_events": rtmrs.as_ref().map(|l| hexes(&l.rtmr1)),
            "rtmr2_events": rtmrs.as_ref().map(|l| hexes(&l.rtmr2)),
            "measured_cmdline": rtmrs.as_ref().map(|l| l.measured_cmdline.clone()),
        });
        println!("{v}");
    } else {
        println!("mrtd:  {}", hex::encode(mrtd));
        if let Some(l) = &rtmrs {
            println!("rtmr1: {}", hex::encode(tdx::replay(&l.rtmr1)));
            println!("rtmr2: {}", hex::encode(tdx::replay(&l.rtmr2)));
        }
    }
    Ok(())
}

fn run_ovmf(a: &OvmfArgs) -> anyhow::Result<()> {
    let ovmf = load_ovmf(&a.file)?;
    let r = ovmf.report();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    println!("size: {} bytes, mapped at {:#x}", r.size, r.gpa);
    if r.footer_entries.is_empty() {
        println!("no footer GUID table: no SEV or TDX metadata");
    }
    for e in &r.footer_entries {
        println!("footer entry {} {} ({} bytes)", e.guid, e.name, e.data_len);
    }
    if let Some(eip) = r.sev_es_reset_eip {
        println!("sev-es reset eip: {eip:#x}");
    }
    for s in r.sev_metadata.iter().flat_map(|m| &m.sections) {
        println!(
            "sev section {:?} gpa {:#x} size {:#x}",
            s.kind, s.gpa, s.size
        );
    }
    if let Some(t) = r.sev_hashes_table {
        println!("sev hashes table gpa {:#x} size {:?}", t.gpa, t.size);
    }
    println!(
        "snp kernel hashes: {}",
        if r.snp_kernel_hashes { "yes" } else { "no" }
    );
    for s in r.tdvf.iter().flat_map(|m| &m.sections) {
        println!(
            "tdvf section {:?} gpa {:#x} size {:#x} raw {:#x}@{:#x} attributes {:#x}{}",
            s.kind,
            s.memory_address,
            s.memory_data_size,
            s.raw_data_size,
            s.data_offset,
            s.attributes,
            if s.mr_extend() { " (MR.EXTEND)" } else { "" }
        );
    }
    Ok(())
}

fn run_reference(a: &ReferenceArgs) -> anyhow::Result<()> {
    let snp_path = a.snp_ovmf.as_ref().or(a.ovmf.as_ref());
    let tdx_path = a.tdx_ovmf.as_ref().or(a.ovmf.as_ref());
    let cfg = measurements::reference::LaunchConfig {
        snp_ovmf: snp_path.map(|p| load_ovmf(p)).transpose()?,
        tdx_ovmf: tdx_path.map(|p| load_ovmf(p)).transpose()?,
        vcpus: a.vcpus.clone(),
        vcpu_sig: vcpu::CpuSig::from_type(&a.vcpu_type)
            .ok_or_else(|| Usage(format!("unknown vcpu type `{}`", a.vcpu_type)))?,
        guest_features: a.guest_features,
        memory_bytes: a.memory_mib.saturating_mul(1024 * 1024),
        qemu_patches_kernel: qemu_patches(&a.qemu_version)?,
        page_order: match a.page_order {
            OrderArg::Single => PageOrder::SinglePass,
            OrderArg::Two => PageOrder::TwoPass,
        },
        initrd_arg: match a.initrd_arg {
            InitrdArgArg::Suffix => InitrdArg::Suffix,
            InitrdArgArg::Prefix => InitrdArg::Prefix,
        },
    };
    let (values, notes) = measurements::reference::reference_values(&a.image, &cfg)?;
    for n in notes {
        eprintln!("measure: note: {n}");
    }
    let mut text = serde_json::to_string_pretty(&values)?;
    text.push('\n');
    attestation::reference::ReferenceValues::from_json(text.as_bytes())
        .context("the document does not load as reference values")?;
    match &a.out {
        Some(p) => std::fs::write(p, text).with_context(|| format!("writing `{}`", p.display()))?,
        None => print!("{text}"),
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.cmd {
        Cmd::Snp(a) => run_snp(a),
        Cmd::Tdx(a) => run_tdx(a),
        Cmd::Ovmf(a) => run_ovmf(a),
        Cmd::Reference(a) => run_reference(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is::<Usage>() => {
            eprintln!("measure: error: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("Error: {e:#}");
            ExitCode::from(1)
        }
    }
}
