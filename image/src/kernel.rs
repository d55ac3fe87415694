//! The pinned Debian kernel: fetched once with `apt-get download` into a cache, checked
//! against the pinned SHA-256, unpacked with `dpkg-deb`; modules resolved with its
//! `modules.dep`.

use crate::pins;
use crate::ImageError;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// An unpacked kernel package.
#[derive(Debug)]
pub struct KernelTree {
    /// Where the package was unpacked.
    pub root: PathBuf,
    /// SHA-256 of the `.deb`.
    pub deb_sha256: String,
}

/// Serialises fetching within a process (parallel builds share one cache).
static FETCH: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub(crate) fn run(cmd: &mut Command, what: &str) -> Result<(), ImageError> {
    let out = cmd.output().map_err(|e| ImageError::Tool {
        what: what.to_string(),
        detail: e.to_string(),
    })?;
    if !out.status.success() {
        return Err(ImageError::Tool {
            what: what.to_string(),
            detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(())
}

fn sha256_file(path: &Path) -> Result<String, ImageError> {
    let data = std::fs::read(path).map_err(|e| ImageError::io("reading", path, e))?;
    Ok(hex::encode(Sha256::digest(&data)))
}

/// Fetches (or reuses) and unpacks the pinned package, or unpacks `deb` when given (its digest
/// is recorded, and it must be the pinned version's unless `allow_other` is set).
pub fn fetch(
    cache: &Path,
    deb: Option<&Path>,
    allow_other: bool,
    progress: &mut dyn FnMut(&str),
) -> Result<KernelTree, ImageError> {
    let _guard = FETCH
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    std::fs::create_dir_all(cache).map_err(|e| ImageError::io("creating", cache, e))?;
    let pinned = cache.join(format!(
        "{}_{}_amd64.deb",
        pins::KERNEL_PACKAGE,
        pins::KERNEL_VERSION.replace(':', "%3a")
    ));
    let deb = match deb {
        Some(d) => d.to_path_buf(),
        None => {
            if !pinned.is_file() || sha256_file(&pinned)? != pins::KERNEL_DEB_SHA256 {
                progress(&format!(
                    "downloading {}={} (apt-get download)",
                    pins::KERNEL_PACKAGE,
                    pins::KERNEL_VERSION
                ));
                run(
                    Command::new("apt-get")
                        .arg("download")
                        .arg(format!("{}={}", pins::KERNEL_PACKAGE, pins::KERNEL_VERSION))
                        .current_dir(cache),
                    "apt-get download of the pinned kernel (is `apt-get update` done?)",
                )?;
            }
            pinned
        }
    };
    let digest = sha256_file(&deb)?;
    if digest != pins::KERNEL_DEB_SHA256 && !allow_other {
        return Err(ImageError::KernelDigest {
            want: pins::KERNEL_DEB_SHA256.to_string(),
            got: digest,
        });
    }
    let short = digest.get(..16).unwrap_or(&digest);
    let root = cache.join(format!("unpacked-{short}"));
    if !root.join("boot").is_dir() {
        progress("unpacking the kernel package (dpkg-deb -x)");
        let tmp = cache.join(format!("unpacking-{short}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        run(
            Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&tmp),
            "dpkg-deb -x",
        )?;
        if let Err(e) = std::fs::rename(&tmp, &root) {
            // Another process unpacked the same package first.
            let _ = std::fs::remove_dir_all(&tmp);
            if !root.join("boot").is_dir() {
                return Err(ImageError::io("renaming", &tmp, e));
            }
        }
    }
    Ok(KernelTree {
        root,
        deb_sha256: digest,
    })
}

impl KernelTree {
    /// The kernel image.
    pub fn vmlinuz(&self) -> PathBuf {
        self.root
            .join("boot")
            .join(format!("vmlinuz-{}", pins::KERNEL_RELEASE))
    }

    fn modules_dir(&self) -> PathBuf {
        self.root.join("lib/modules").join(pins::KERNEL_RELEASE)
    }

    /// Every module file of the package by normalised name (`-` as `_`), relative paths.
    fn module_index(&self) -> Result<BTreeMap<String, String>, ImageError> {
        let base = self.modules_dir();
        let mut index = BTreeMap::new();
        let mut stack = vec![base.join("kernel")];
        while let Some(dir) = stack.pop() {
            let entries =
                std::fs::read_dir(&dir).map_err(|e| ImageError::io("listing", &dir, e))?;
            for entry in entries {
                let path = entry
                    .map_err(|e| ImageError::io("listing", &dir, e))?
                    .path();
                if path.is_dir() {
                    stack.push(path);
                } else if let (Some(name), Ok(rel)) = (
                    path.file_name()
                        .and_then(|n| n.to_str())
                        .and_then(|n| n.strip_suffix(".ko")),
                    path.strip_prefix(&base),
                ) {
                    index.insert(name.replace('-', "_"), rel.to_string_lossy().into_owned());
                }
            }
        }
        Ok(index)
    }

    /// The modules named in `names` and their dependencies (each module's `.modinfo`
    /// `depends=` field, what `depmod` reads), dependencies first, as paths relative to the
    /// module directory.
    pub fn resolve_modules(&self, names: &[&str]) -> Result<Vec<String>, ImageError> {
        let index = self.module_index()?;
        let mut order: Vec<String> = Vec::new();
        let mut stack: Vec<(String, bool)> = names
            .iter()
            .rev()
            .map(|n| (n.replace('-', "_"), false))
            .collect();
        let mut guard = 0usize;
        while let Some((name, expanded)) = stack.pop() {
            guard += 1;
            if guard > 10_000 {
                return Err(ImageError::MissingModule {
                    name: format!("{name} (dependency cycle)"),
                });
            }
            let rel = index
                .get(&name)
                .ok_or_else(|| ImageError::MissingModule { name: name.clone() })?;
            if order.contains(rel) {
                continue;
            }
            if expanded {
                order.push(rel.clone());
                continue;
            }
            stack.push((name, true));
            for dep in depends(&self.module_bytes(rel)?).into_iter().rev() {
                stack.push((dep, false));
            }
        }
        Ok(order)
    }

    /// Bytes of a module given by its path relative to the module directory.
    pub fn module_bytes(&self, rel: &str) -> Result<Vec<u8>, ImageError> {
        let p = self.modules_dir().join(rel);
        std::fs::read(&p).map_err(|e| ImageError::io("reading", &p, e))
    }
}

/// The `depends=` list of a module's `.modinfo` section.
fn depends(ko: &[u8]) -> Vec<String> {
    let key = b"depends=";
    let Some(at) = ko.windows(key.len()).position(|w| w == key) else {
        return Vec::new();
    };
    let rest = ko.get(at + key.len()..).unwrap_or(&[]);
    let end = rest.iter().position(|b| *b == 0).unwrap_or(rest.len());
    String::from_utf8_lossy(rest.get(..end).unwrap_or(&[]))
        .split(',')
        .filter(|d| !d.is_empty())
        .map(|d| d.replace('-', "_"))
        .collect()
}
