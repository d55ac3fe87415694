//! The guest image: a pinned Debian kernel, an initramfs whose `/init` is the `enclave`
//! binary (with exactly the shared libraries and kernel modules it needs), a fixed kernel
//! command line, and a manifest with the SHA-256 and SHA-384 of every part.
//!
//! The image is what a verifier's reference values are computed from (`measure reference
//! --image DIR`), so it must be reproducible: the same inputs give the same bytes. Inputs are
//! the pinned kernel package (checked against its pinned SHA-256), the enclave binary and the
//! host's shared libraries it links; everything else is fixed here. The initramfs is a `newc`
//! cpio with sorted entries, zero timestamps and owners ([`cpio`]), compressed by `gzip -9 -n`
//! (no name, zero timestamp).

#![forbid(unsafe_code)]

pub mod cpio;
pub mod kernel;
mod libs;
pub mod manifest;
pub mod ovmf_amdsev;
pub mod pins;

use cpio::{Archive, Node};
use manifest::{Content, KernelSource, Manifest, Part};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Why an image could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImageError {
    /// "{action} `{path}`".
    #[error("{action} `{path}`")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// "{what} failed: {detail}".
    #[error("{what} failed: {detail}")]
    Tool {
        /// The command.
        what: String,
        /// Its stderr.
        detail: String,
    },
    /// "kernel package SHA-256 is {got}, not the pinned {want}".
    #[error("kernel package SHA-256 is {got}, not the pinned {want}")]
    KernelDigest {
        /// Pinned digest.
        want: String,
        /// Digest found.
        got: String,
    },
    /// "kernel module `{name}` is not in the kernel package".
    #[error("kernel module `{name}` is not in the kernel package")]
    MissingModule {
        /// Module name.
        name: String,
    },
    /// "shared library `{name}` cannot be found".
    #[error("shared library `{name}` cannot be found")]
    MissingLibrary {
        /// Library name or the `ldd` line.
        name: String,
    },
}

impl ImageError {
    pub(crate) fn io(action: &'static str, path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            action,
            path: path.display().to_string(),
            source,
        }
    }
}

/// What `image build` takes.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// The enclave binary (becomes `/init`).
    pub enclave: PathBuf,
    /// Output directory.
    pub out: PathBuf,
    /// Cache for the kernel package.
    pub cache: PathBuf,
    /// A local kernel `.deb` instead of downloading the pinned one.
    pub kernel_deb: Option<PathBuf>,
    /// Accept a kernel `.deb` whose digest is not the pinned one (recorded in the manifest).
    pub allow_other_kernel: bool,
    /// Kernel command line.
    pub cmdline: String,
    /// Remove debug sections from the enclave (`strip --strip-debug`, deterministic).
    pub strip_debug: bool,
}

fn read(path: &Path) -> Result<Vec<u8>, ImageError> {
    std::fs::read(path).map_err(|e| ImageError::io("reading", path, e))
}

fn write(path: &Path, data: &[u8]) -> Result<(), ImageError> {
    std::fs::write(path, data).map_err(|e| ImageError::io("writing", path, e))
}

/// The initramfs archive for `enclave` with `modules` (paths relative to the module
/// directory, with their bytes) and `libraries` (absolute paths on this host).
pub fn initramfs(
    enclave: Vec<u8>,
    modules: &[(String, Vec<u8>)],
    libraries: &[(PathBuf, Vec<u8>)],
) -> Archive {
    let mut a = Archive::default();
    a.insert(
        "init",
        Node::File {
            data: enclave,
            mode: 0o755,
        },
    );
    for d in ["dev", "proc", "sys", "tmp", "run", "state"] {
        a.insert(d, Node::Dir);
    }
    // The kernel opens /dev/console for init's stdio before any devtmpfs exists.
    a.insert("dev/console", Node::CharDev { major: 5, minor: 1 });
    let moddir = format!("lib/modules/{}", pins::KERNEL_RELEASE);
    let mut load_order = String::new();
    for (rel, data) in modules {
        a.insert(
            &format!("{moddir}/{rel}"),
            Node::File {
                data: data.clone(),
                mode: 0o644,
            },
        );
        load_order.push_str(&format!("/{moddir}/{rel}\n"));
    }
    a.insert(
        "etc/modules",
        Node::File {
            data: load_order.into_bytes(),
            mode: 0o644,
        },
    );
    for (path, data) in libraries {
        let p = path.to_string_lossy();
        let mode = if p.contains("ld-linux") { 0o755 } else { 0o644 };
        a.insert(
            &p,
            Node::File {
                data: data.clone(),
                mode,
            },
        );
    }
    a
}

/// gzip (`gzip -9 -n`: no name, zero timestamp): the same input gives the same bytes.
pub fn gzip(data: &[u8]) -> Result<Vec<u8>, ImageError> {
    use std::process::{Command, Stdio};
    let tool = |detail: String| ImageError::Tool {
        what: "gzip -9 -n".into(),
        detail,
    };
    let mut child = Command::new("gzip")
        .args(["-9", "-n", "-c"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| tool(e.to_string()))?;
    let mut stdin = child.stdin.take().ok_or_else(|| tool("no stdin".into()))?;
    let input = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().map_err(|e| tool(e.to_string()))?;
    let written = writer
        .join()
        .map_err(|_| tool("writer thread failed".into()))?;
    written.map_err(|e| tool(e.to_string()))?;
    if !out.status.success() {
        return Err(tool(String::from_utf8_lossy(&out.stderr).into_owned()));
    }
    Ok(out.stdout)
}

/// Builds the image into `opts.out`, reporting each step to `progress`.
pub fn build(opts: &BuildOptions, progress: &mut dyn FnMut(&str)) -> Result<Manifest, ImageError> {
    progress(&format!(
        "[1/5] kernel {}={}",
        pins::KERNEL_PACKAGE,
        pins::KERNEL_VERSION
    ));
    let tree = kernel::fetch(
        &opts.cache,
        opts.kernel_deb.as_deref(),
        opts.allow_other_kernel,
        progress,
    )?;
    let vmlinuz = read(&tree.vmlinuz())?;
    progress("[2/5] kernel modules");
    let mut modules = Vec::new();
    for rel in tree.resolve_modules(pins::MODULES)? {
        let data = tree.module_bytes(&rel)?;
        progress(&format!("      {rel} ({} bytes)", data.len()));
        modules.push((rel, data));
    }
    progress("[3/5] enclave and its shared libraries");
    let enclave = if opts.strip_debug {
        std::fs::create_dir_all(&opts.cache)
            .map_err(|e| ImageError::io("creating", &opts.cache, e))?;
        let stripped = opts
            .cache
            .join(format!("enclave-stripped-{}", std::process::id()));
        kernel::run(
            std::process::Command::new("strip")
                .arg("--strip-debug")
                .arg("-o")
                .arg(&stripped)
                .arg(&opts.enclave),
            "strip --strip-debug (binutils)",
        )?;
        let data = read(&stripped)?;
        let _ = std::fs::remove_file(&stripped);
        data
    } else {
        read(&opts.enclave)?
    };
    progress(&format!(
        "      /init = {} ({} bytes)",
        opts.enclave.display(),
        enclave.len()
    ));
    let mut libraries = Vec::new();
    for lib in libs::closure(&opts.enclave, pins::DLOPEN_LIBRARIES)? {
        let data = read(&lib)?;
        progress(&format!("      {} ({} bytes)", lib.display(), data.len()));
        libraries.push((lib, data));
    }
    progress("[4/5] initramfs (newc cpio, gzip)");
    let archive = initramfs(enclave.clone(), &modules, &libraries);
    let contents = archive
        .entries()
        .filter_map(|(path, node)| match node {
            Node::File { data, .. } => Some(Content {
                path: format!("/{path}"),
                bytes: u64::try_from(data.len()).unwrap_or(u64::MAX),
                sha256: hex::encode(Sha256::digest(data)),
            }),
            _ => None,
        })
        .collect();
    let initrd = gzip(&archive.to_bytes())?;
    progress("[5/5] writing the image and its manifest");
    std::fs::create_dir_all(&opts.out).map_err(|e| ImageError::io("creating", &opts.out, e))?;
    write(&opts.out.join(manifest::KERNEL_FILE), &vmlinuz)?;
    write(&opts.out.join(manifest::INITRD_FILE), &initrd)?;
    write(
        &opts.out.join(manifest::CMDLINE_FILE),
        opts.cmdline.as_bytes(),
    )?;
    let m = Manifest {
        version: 1,
        kernel: Part::of(Some(manifest::KERNEL_FILE), &vmlinuz),
        kernel_source: KernelSource {
            package: pins::KERNEL_PACKAGE.into(),
            version: pins::KERNEL_VERSION.into(),
            deb_sha256: tree.deb_sha256.clone(),
            release: pins::KERNEL_RELEASE.into(),
        },
        initrd: Part::of(Some(manifest::INITRD_FILE), &initrd),
        cmdline: opts.cmdline.clone(),
        cmdline_digests: Part::of(None, opts.cmdline.as_bytes()),
        enclave: Part::of(None, &enclave),
        modules: modules
            .iter()
            .map(|(rel, _)| format!("/lib/modules/{}/{rel}", pins::KERNEL_RELEASE))
            .collect(),
        contents,
    };
    let mut text = serde_json::to_vec_pretty(&m).map_err(|e| ImageError::Tool {
        what: "serialising the manifest".into(),
        detail: e.to_string(),
    })?;
    text.push(b'\n');
    write(&opts.out.join(manifest::MANIFEST_FILE), &text)?;
    Ok(m)
}
