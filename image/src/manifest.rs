//! The image manifest: every part of the image with its SHA-256 and SHA-384, and every file
//! of the initramfs with its SHA-256. `measure reference --image DIR` reads it.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256, Sha384};
use std::path::Path;

/// File name of the manifest in an image directory.
pub const MANIFEST_FILE: &str = "manifest.json";
/// The kernel's file name in an image directory.
pub const KERNEL_FILE: &str = "vmlinuz";
/// The initramfs's file name in an image directory.
pub const INITRD_FILE: &str = "initrd.img";
/// The command line's file name in an image directory.
pub const CMDLINE_FILE: &str = "cmdline";

/// Digests of one part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Part {
    /// File name in the image directory (absent for the command line, which is text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Size in bytes.
    pub bytes: u64,
    /// SHA-256, hex.
    pub sha256: String,
    /// SHA-384, hex.
    pub sha384: String,
}

impl Part {
    /// Digests of `data`.
    pub fn of(file: Option<&str>, data: &[u8]) -> Self {
        Self {
            file: file.map(str::to_string),
            bytes: u64::try_from(data.len()).unwrap_or(u64::MAX),
            sha256: hex::encode(Sha256::digest(data)),
            sha384: hex::encode(Sha384::digest(data)),
        }
    }
}

/// Where the kernel came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelSource {
    /// Debian package name.
    pub package: String,
    /// Package version.
    pub version: String,
    /// SHA-256 of the `.deb`.
    pub deb_sha256: String,
    /// `uname -r`.
    pub release: String,
}

/// One file of the initramfs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Content {
    /// Path inside the initramfs.
    pub path: String,
    /// Size in bytes.
    pub bytes: u64,
    /// SHA-256, hex (of the link target for symlinks).
    pub sha256: String,
}

/// The manifest of an image directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Format version (1).
    pub version: u32,
    /// The kernel image.
    pub kernel: Part,
    /// Its source package.
    pub kernel_source: KernelSource,
    /// The initramfs (gzip-compressed `newc` cpio).
    pub initrd: Part,
    /// The command line, as given to QEMU `-append`.
    pub cmdline: String,
    /// Digests of the command line's bytes (no terminator).
    pub cmdline_digests: Part,
    /// The enclave binary (the initramfs's `/init`).
    pub enclave: Part,
    /// Kernel modules in load order (dependencies first), paths inside the initramfs.
    pub modules: Vec<String>,
    /// Every file of the initramfs.
    pub contents: Vec<Content>,
}

/// Largest manifest accepted.
pub const MAX_MANIFEST_BYTES: u64 = 4 * 1024 * 1024;

/// Why a manifest could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// "cannot read `{path}`".
    #[error("cannot read `{path}`")]
    Io {
        /// The file.
        path: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// "`{path}` is not an image manifest".
    #[error("`{path}` is not an image manifest")]
    Malformed {
        /// The file.
        path: String,
        /// Cause.
        #[source]
        source: serde_json::Error,
    },
    /// "`{path}` is larger than 4 MiB".
    #[error("`{path}` is larger than 4 MiB")]
    TooLarge {
        /// The file.
        path: String,
    },
}

impl Manifest {
    /// Reads `DIR/manifest.json`.
    pub fn load(dir: &Path) -> Result<Self, ManifestError> {
        let path = dir.join(MANIFEST_FILE);
        let shown = path.display().to_string();
        let io = |source| ManifestError::Io {
            path: shown.clone(),
            source,
        };
        if std::fs::metadata(&path).map_err(io)?.len() > MAX_MANIFEST_BYTES {
            return Err(ManifestError::TooLarge { path: shown });
        }
        let text = std::fs::read(&path).map_err(io)?;
        serde_json::from_slice(&text).map_err(|source| ManifestError::Malformed {
            path: shown,
            source,
        })
    }
}
