//! The shared libraries a binary needs, from `ldd` (the dynamic loader's own answer), plus the
//! ones it opens with `dlopen` that `ldd` cannot see.

use crate::kernel::run;
use crate::ImageError;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Library directories searched for `dlopen`ed names.
const LIBRARY_DIRS: &[&str] = &[
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib64",
    "/usr/lib",
];

fn ldd(binary: &Path) -> Result<Vec<PathBuf>, ImageError> {
    run(
        Command::new("ldd").arg(binary),
        "ldd (is the enclave a dynamically linked ELF?)",
    )?;
    let out = Command::new("ldd")
        .arg(binary)
        .output()
        .map_err(|e| ImageError::Tool {
            what: "ldd".into(),
            detail: e.to_string(),
        })?;
    let mut libs = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let line = line.trim();
        if line.contains("not found") {
            return Err(ImageError::MissingLibrary {
                name: line.to_string(),
            });
        }
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            libs.push(PathBuf::from(p));
        }
    }
    Ok(libs)
}

fn find(name: &str) -> Result<PathBuf, ImageError> {
    LIBRARY_DIRS
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.exists())
        .ok_or_else(|| ImageError::MissingLibrary {
            name: name.to_string(),
        })
}

/// Every library `binary` loads, with the `dlopen`ed `extra` names and their own libraries,
/// as the absolute paths the loader uses.
pub fn closure(binary: &Path, extra: &[&str]) -> Result<BTreeSet<PathBuf>, ImageError> {
    let mut all: BTreeSet<PathBuf> = ldd(binary)?.into_iter().collect();
    for name in extra {
        let p = find(name)?;
        all.extend(ldd(&p)?);
        all.insert(p);
    }
    Ok(all)
}
