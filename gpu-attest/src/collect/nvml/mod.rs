//! NVML backend (`nvml-wrapper`, which loads `libnvidia-ml.so` at run time).
//!
//! Per GPU: `nvmlDeviceGetUUID`, `…GetName`, `…GetArchitecture`, `nvmlSystemGetDriverVersion`,
//! `…GetVbiosVersion`, the system CC state, `nvmlSystemGetConfComputeGpusReadyState`,
//! `nvmlSystemGetConfComputeSettings` (protected PCIe), protected memory,
//! `nvmlDeviceGetConfComputeGpuAttestationReport(nonce)` and
//! `nvmlDeviceGetConfComputeGpuCertificate` (the attestation chain, PEM). Collection stops
//! with [`CollectError::CcOff`] when the system CC feature is off: a report from a GPU outside
//! CC mode must not enter a bundle.

mod sys;

use super::{CcState, GpuEvidence, GpuEvidenceSource, ProtectedMemory};
use crate::error::CollectError;
use crate::spdm::defs::MAX_REPORT_LEN;
use crate::spdm::GpuNonce;
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::Nvml;

/// NVML's `NVML_CC_SYSTEM_FEATURE_ENABLED`.
const CC_FEATURE_ENABLED: u32 = 1;
/// NVML's `NVML_CC_SYSTEM_DEVTOOLS_MODE_ON`.
const DEVTOOLS_MODE_ON: u32 = 1;

fn nvml_error(call: &'static str) -> impl Fn(NvmlError) -> CollectError {
    move |e| match e {
        NvmlError::NotSupported
        | NvmlError::FunctionNotFound
        | NvmlError::FailedToLoadSymbol(_) => CollectError::NotSupported { call },
        NvmlError::DriverNotLoaded => CollectError::DriverNotLoaded,
        NvmlError::LibloadingError(_) | NvmlError::LibraryNotFound => {
            CollectError::LibraryMissing(Box::new(e))
        }
        other => CollectError::Nvml {
            call,
            source: Box::new(other),
        },
    }
}

/// Optional queries: "not supported" is an absent value, any other failure an error.
fn optional<T>(r: Result<T, NvmlError>, call: &'static str) -> Result<Option<T>, CollectError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(
            NvmlError::NotSupported
            | NvmlError::FunctionNotFound
            | NvmlError::FailedToLoadSymbol(_),
        ) => Ok(None),
        Err(e) => Err(nvml_error(call)(e)),
    }
}

fn environment(raw: u32) -> String {
    match raw {
        1 => "sim".into(),
        2 => "prod".into(),
        0 => "unavailable".into(),
        n => format!("unknown ({n})"),
    }
}

/// Collects from the GPUs NVML sees.
pub struct NvmlSource {
    nvml: Nvml,
}

impl std::fmt::Debug for NvmlSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NvmlSource").finish_non_exhaustive()
    }
}

impl NvmlSource {
    /// Loads libnvidia-ml and initialises NVML. Without the library this is
    /// [`CollectError::LibraryMissing`]; without the kernel driver,
    /// [`CollectError::DriverNotLoaded`].
    pub fn open() -> Result<Self, CollectError> {
        let nvml = Nvml::init().map_err(nvml_error("nvmlInit_v2"))?;
        Ok(Self { nvml })
    }

    fn cc_system(&self) -> Result<(bool, bool, String), CollectError> {
        let (env, feature, devtools) = sys::system_cc_state(&self.nvml)
            .map_err(nvml_error("nvmlSystemGetConfComputeState"))?;
        Ok((
            feature == CC_FEATURE_ENABLED,
            devtools == DEVTOOLS_MODE_ON,
            environment(env),
        ))
    }

    fn one(&self, index: u32, nonce: &GpuNonce, driver: &str) -> Result<GpuEvidence, CollectError> {
        let (cc_enabled, dev_tools_mode, environment) = self.cc_system()?;
        if !cc_enabled {
            return Err(CollectError::CcOff);
        }
        let d = self
            .nvml
            .device_by_index(index)
            .map_err(nvml_error("nvmlDeviceGetHandleByIndex_v2"))?;
        let gpus_ready = d
            .get_confidential_compute_state()
            .map_err(nvml_error("nvmlSystemGetConfComputeGpusReadyState"))?;
        let protected_pcie = optional(
            d.is_multi_gpu_protected_pcie_enabled(),
            "nvmlSystemGetConfComputeSettings",
        )?;
        let protected_memory = optional(
            sys::protected_memory(&self.nvml, &d),
            "nvmlDeviceGetConfComputeProtectedMemoryUsage",
        )?
        .map(|(total_bytes, used_bytes)| ProtectedMemory {
            total_bytes,
            used_bytes,
        });
        let report = d
            .confidential_compute_gpu_attestation_report(*nonce.as_bytes())
            .map_err(nvml_error("nvmlDeviceGetConfComputeGpuAttestationReport"))?
            .attestation_report;
        if report.is_empty() || report.len() > MAX_REPORT_LEN {
            return Err(CollectError::Malformed {
                what: "attestation report size",
            });
        }
        let cert = d
            .confidential_compute_gpu_certificate()
            .map_err(nvml_error("nvmlDeviceGetConfComputeGpuCertificate"))?;
        let pem = String::from_utf8(cert.attestation_cert_chain).map_err(|_| {
            CollectError::Malformed {
                what: "attestation certificate chain (not pem text)",
            }
        })?;
        Ok(GpuEvidence {
            index,
            uuid: d.uuid().map_err(nvml_error("nvmlDeviceGetUUID"))?,
            name: d.name().map_err(nvml_error("nvmlDeviceGetName"))?,
            architecture: d
                .architecture()
                .map_err(nvml_error("nvmlDeviceGetArchitecture"))?
                .to_string(),
            driver_version: driver.to_owned(),
            vbios_version: d
                .vbios_version()
                .map_err(nvml_error("nvmlDeviceGetVbiosVersion"))?,
            cc: CcState {
                cc_enabled,
                dev_tools_mode,
                environment,
                gpus_ready,
                protected_pcie,
                protected_memory,
            },
            report,
            cert_chain_pem: pem.trim_end_matches('\0').to_owned(),
        })
    }
}

impl GpuEvidenceSource for NvmlSource {
    fn collect(&mut self, nonce: &GpuNonce) -> Result<Vec<GpuEvidence>, CollectError> {
        let count = self
            .nvml
            .device_count()
            .map_err(nvml_error("nvmlDeviceGetCount_v2"))?;
        if count == 0 {
            return Err(CollectError::NoGpus);
        }
        let driver = self
            .nvml
            .sys_driver_version()
            .map_err(nvml_error("nvmlSystemGetDriverVersion"))?;
        (0..count).map(|i| self.one(i, nonce, &driver)).collect()
    }
}
