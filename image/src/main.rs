//! `image`: builds the guest image (pinned Debian kernel, initramfs with the enclave as
//! `/init`, fixed command line, manifest of digests).
//!
//! Exit codes: 0 success, 1 the build failed (the message says which step), 2 bad arguments.

use clap::{Parser, Subcommand};
use image::ovmf_amdsev::{build_ovmf_amdsev, AmdSevOptions};
use image::{build, pins, BuildOptions};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "image",
    version,
    about = "Reproducible guest image: Debian kernel, initramfs with the enclave as /init, fixed cmdline",
    long_about = "Builds the guest image a confidential VM boots, reproducibly: the same enclave \
binary and pinned kernel package give the same bytes.\n\n\
  image build --enclave target/release/enclave --out target/image\n\
      writes vmlinuz, initrd.img, cmdline and manifest.json (SHA-256 and SHA-384 of every part)\n\
  measure reference --image target/image\n\
      computes the reference values of that image\n\
  image ovmf-amdsev [--cache target/image-cache]\n\
      builds (once, cached) an AmdSev OVMF with the SEV kernel-hashes section from Debian's edk2\n\n\
Exit codes: 0 success, 1 build failed, 2 bad arguments."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build the image.
    Build {
        /// The enclave binary (becomes /init).
        #[arg(long)]
        enclave: PathBuf,
        /// Output directory.
        #[arg(long, default_value = "target/image")]
        out: PathBuf,
        /// Cache for the downloaded kernel package.
        #[arg(long, default_value = "target/image-cache")]
        cache: PathBuf,
        /// Use this kernel .deb instead of downloading the pinned one.
        #[arg(long)]
        kernel_deb: Option<PathBuf>,
        /// Accept a kernel .deb that is not the pinned one (its digest goes in the manifest).
        #[arg(long, requires = "kernel_deb")]
        allow_other_kernel: bool,
        /// Kernel command line.
        #[arg(long, default_value = pins::CMDLINE, allow_hyphen_values = true)]
        cmdline: String,
        /// Keep the enclave's debug sections (by default they are stripped).
        #[arg(long)]
        no_strip: bool,
    },
    /// Build (or reuse) an AmdSev OVMF with the SEV kernel-hashes section from Debian's edk2
    /// source package (opt-in, slow: BaseTools and the whole platform are compiled).
    OvmfAmdsev {
        /// Cache root; the firmware goes in `ovmf-amdsev/VERSION/OVMF.fd`.
        #[arg(long, default_value = "target/image-cache")]
        cache: PathBuf,
        /// Debian `edk2` source version (`apt-get source edk2=VERSION`).
        #[arg(long, default_value = pins::EDK2_VERSION)]
        edk2_version: String,
        /// Parallel build jobs (default: the number of CPUs).
        #[arg(long)]
        jobs: Option<usize>,
        /// Build again even when the cached firmware exists.
        #[arg(long)]
        rebuild: bool,
        /// Keep the unpacked source and build tree (about 1 GiB).
        #[arg(long)]
        keep_tree: bool,
        /// Print the result as one JSON object.
        #[arg(long)]
        json: bool,
    },
}

fn report(e: &dyn std::error::Error) -> ExitCode {
    let mut msg = format!("image: error: {e}");
    let mut src = e.source();
    while let Some(s) = src {
        msg.push_str(&format!(": {s}"));
        src = s.source();
    }
    eprintln!("{msg}");
    ExitCode::from(1)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Build {
            enclave,
            out,
            cache,
            kernel_deb,
            allow_other_kernel,
            cmdline,
            no_strip,
        } => {
            let opts = BuildOptions {
                enclave,
                out: out.clone(),
                cache,
                kernel_deb,
                allow_other_kernel,
                cmdline,
                strip_debug: !no_strip,
            };
            match build(&opts, &mut |line| eprintln!("image: {line}")) {
                Ok(m) => {
                    println!(
                        "{}: kernel {} bytes, initrd {} bytes (sha256 {})",
                        out.display(),
                        m.kernel.bytes,
                        m.initrd.bytes,
                        m.initrd.sha256
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => report(&e),
            }
        }
        Cmd::OvmfAmdsev {
            cache,
            edk2_version,
            jobs,
            rebuild,
            keep_tree,
            json,
        } => {
            let opts = AmdSevOptions {
                cache,
                edk2_version,
                jobs: jobs
                    .or_else(|| std::thread::available_parallelism().ok().map(usize::from))
                    .unwrap_or(1)
                    .max(1),
                rebuild,
                keep_tree,
            };
            match build_ovmf_amdsev(&opts, &mut |line| eprintln!("image: {line}")) {
                Ok(fw) => {
                    if json {
                        println!("{}", serde_json::to_string(&fw).unwrap_or_default());
                    } else {
                        println!(
                            "{}: AmdSev OVMF from edk2 {}, {} bytes, sha256 {}{}",
                            fw.path.display(),
                            fw.edk2_version,
                            fw.bytes,
                            fw.sha256,
                            if fw.reused {
                                " (cached)".to_string()
                            } else {
                                format!(" (built in {} s)", fw.seconds)
                            }
                        );
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => report(&e),
            }
        }
    }
}
