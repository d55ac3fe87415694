//! Intel TDX evidence.
//!
//! Collection goes through the kernel's configfs-tsm report interface
//! (`Documentation/ABI/testing/configfs-tsm`, Linux 6.7+): create a directory under
//! `/sys/kernel/config/tsm/report/`, write the 64-byte binding value to `inblob`, read the
//! DCAP quote from `outblob`, check `generation` did not change underneath us, remove the
//! directory. Intel's `tdx-guest` crate needs nightly Rust, so it is not used.
//!
//! Verifier side, by RATS role: [`quote`] frames DCAP quotes v4/v5 (evidence),
//! [`collateral`] holds Intel's endorsements (PCK CRLs, TCB info, QE identity), [`verify`]
//! checks the quote against them and the pinned Intel root (through `dcap-qvl`), and
//! [`crate::reference`] appraises the verified quote against reference values.

pub mod collateral;
pub mod error;
pub mod pck;
pub mod quote;
pub mod verify;

pub use collateral::Collateral;
pub use error::TdxError;
pub use quote::{TdReport, UnverifiedTdxQuote};
pub use verify::{
    verify_tdx, verify_tdx_signatures, TcbStatus, TdxVerifier, VerifiedTdxQuote,
    INTEL_SGX_ROOT_CA_DER,
};

use crate::binding::{BindingValue, Level};
use crate::evidence::{Attester, CollectError, EvidenceItem, EvidenceKind};
use std::path::{Path, PathBuf};

/// Root of the configfs-tsm report interface.
pub const TSM_REPORT_ROOT: &str = "/sys/kernel/config/tsm/report";
/// Largest quote accepted from `outblob` (DCAP quotes with a PCK chain are ~5 KiB).
pub const MAX_QUOTE_BYTES: u64 = 64 * 1024;

/// Collects TDX quotes through configfs-tsm.
#[derive(Debug)]
pub struct TdxAttester {
    root: PathBuf,
}

impl TdxAttester {
    /// Uses `root` (normally [`TSM_REPORT_ROOT`]); a missing interface is
    /// [`CollectError::NoSuchDevice`].
    pub fn open(root: &Path) -> Result<Self, CollectError> {
        if !root.is_dir() {
            return Err(CollectError::NoSuchDevice {
                path: root.display().to_string(),
                what: "configfs-tsm report interface (TDX guest)",
            });
        }
        Ok(Self {
            root: root.to_path_buf(),
        })
    }

    fn io(path: &Path) -> impl Fn(std::io::Error) -> CollectError + '_ {
        move |source| CollectError::Device {
            path: path.display().to_string(),
            source,
        }
    }

    fn quote(&self, dir: &Path, binding: &BindingValue) -> Result<Vec<u8>, CollectError> {
        let generation = dir.join("generation");
        let before = std::fs::read_to_string(&generation).map_err(Self::io(&generation))?;
        let provider = dir.join("provider");
        let name = std::fs::read_to_string(&provider).map_err(Self::io(&provider))?;
        if name.trim() != "tdx_guest" {
            return Err(CollectError::NoSuchDevice {
                path: provider.display().to_string(),
                what: "tdx_guest report provider",
            });
        }
        let inblob = dir.join("inblob");
        std::fs::write(&inblob, binding.as_bytes()).map_err(Self::io(&inblob))?;
        let outblob = dir.join("outblob");
        let quote = {
            use std::io::Read;
            let f = std::fs::File::open(&outblob).map_err(Self::io(&outblob))?;
            let mut buf = Vec::new();
            f.take(MAX_QUOTE_BYTES)
                .read_to_end(&mut buf)
                .map_err(Self::io(&outblob))?;
            buf
        };
        let after = std::fs::read_to_string(&generation).map_err(Self::io(&generation))?;
        let before_n: u64 = before.trim().parse().unwrap_or(0);
        let after_n: u64 = after.trim().parse().unwrap_or(u64::MAX);
        if after_n != before_n.saturating_add(1) {
            return Err(CollectError::Malformed(
                "configfs-tsm generation changed during the request (concurrent writer)".into(),
            ));
        }
        if quote.is_empty() {
            return Err(CollectError::Malformed("empty tdx quote".into()));
        }
        Ok(quote)
    }
}

impl Attester for TdxAttester {
    fn kind(&self) -> EvidenceKind {
        EvidenceKind::Tdx
    }
    fn level(&self) -> Option<Level> {
        Some(Level::L3)
    }
    fn collect(&mut self, binding: &BindingValue) -> Result<EvidenceItem, CollectError> {
        let name = format!("enclave-{}-{}", std::process::id(), crate::now_ms());
        let dir = self.root.join(name);
        std::fs::create_dir(&dir).map_err(Self::io(&dir))?;
        let result = self.quote(&dir, binding);
        // configfs entries are removed with rmdir, whatever happened above.
        let _ = std::fs::remove_dir(&dir);
        Ok(EvidenceItem {
            kind: EvidenceKind::Tdx,
            data: result?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_configfs_is_no_such_device() {
        let r = TdxAttester::open(Path::new("/nonexistent/tsm/report"));
        assert!(matches!(r, Err(CollectError::NoSuchDevice { .. })));
    }
}
