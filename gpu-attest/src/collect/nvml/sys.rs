//! The two NVML confidential-computing queries `nvml-wrapper` 0.13 does not wrap, called
//! through the function pointers it already loaded (`Nvml::lib()`):
//! `nvmlSystemGetConfComputeState` (CC feature, dev-tools mode, environment; nvml.h
//! `nvmlConfComputeSystemState_t`) and `nvmlDeviceGetConfComputeProtectedMemoryUsage`
//! (`nvmlMemory_t`). This is the crate's only unsafe code.

#![allow(
    unsafe_code,
    reason = "FFI into libnvidia-ml for two calls nvml-wrapper does not expose"
)]

use nvml_wrapper::error::{nvml_try, NvmlError};
use nvml_wrapper::{Device, Nvml};
use nvml_wrapper_sys::bindings::{nvmlConfComputeSystemState_t, nvmlMemory_t};

/// Raw system CC state: (environment, ccFeature, devToolsMode).
pub(super) fn system_cc_state(nvml: &Nvml) -> Result<(u32, u32, u32), NvmlError> {
    let sym = nvml
        .lib()
        .nvmlSystemGetConfComputeState
        .as_ref()
        .map_err(|e| NvmlError::FailedToLoadSymbol(e.to_string()))?;
    let mut state = nvmlConfComputeSystemState_t {
        environment: 0,
        ccFeature: 0,
        devToolsMode: 0,
    };
    // SAFETY: `sym` was resolved from the loaded libnvidia-ml by nvml-wrapper and has the
    // signature nvml.h declares; `state` is a valid, writable, properly aligned
    // nvmlConfComputeSystemState_t that outlives the call, and NVML writes only inside it.
    let rc = unsafe { sym(&mut state) };
    nvml_try(rc)?;
    Ok((state.environment, state.ccFeature, state.devToolsMode))
}

/// Protected memory of `device`: (total, used) bytes.
pub(super) fn protected_memory(nvml: &Nvml, device: &Device<'_>) -> Result<(u64, u64), NvmlError> {
    let sym = nvml
        .lib()
        .nvmlDeviceGetConfComputeProtectedMemoryUsage
        .as_ref()
        .map_err(|e| NvmlError::FailedToLoadSymbol(e.to_string()))?;
    let mut mem = nvmlMemory_t {
        total: 0,
        free: 0,
        used: 0,
    };
    // SAFETY: `Device::handle` only hands out the handle of a device that `device` borrows
    // from `nvml`, which stays initialised for this call.
    let handle = unsafe { device.handle() };
    // SAFETY: `sym` comes from the loaded libnvidia-ml with the declared signature; `handle` is
    // a live device handle of the same library instance; `mem` is a valid, writable
    // nvmlMemory_t that outlives the call.
    let rc = unsafe { sym(handle, &mut mem) };
    nvml_try(rc)?;
    Ok((mem.total, mem.used))
}
