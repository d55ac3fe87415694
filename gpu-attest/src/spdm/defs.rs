//! Constants of the SPDM messages NVIDIA GPUs return, with the documents they come from.
//!
//! DMTF DSP0274 1.1.0 (SPDM) §10.11: the GET_MEASUREMENTS request, the MEASUREMENTS response,
//! the measurement block and the DMTF measurement field layouts. NVIDIA opaque data TLVs: NVIDIA nvtrust `local_gpu_verifier`
//! `attestation/spdm_msrt_resp_msg.py` (`OpaqueData.OPAQUE_DATA_TYPES`), mirrored in
//! google/go-nvattest-tools `abi/abi.go` (`gpuOpaqueDataTypes`).

/// SPDMVersion byte of SPDM 1.1, the only version Hopper and Blackwell GPUs speak here.
pub const SPDM_VERSION_11: u8 = 0x11;
/// RequestResponseCode of GET_MEASUREMENTS (DSP0274 §10.11).
pub const CODE_GET_MEASUREMENTS: u8 = 0xE0;
/// RequestResponseCode of MEASUREMENTS (DSP0274 §10.11).
pub const CODE_MEASUREMENTS: u8 = 0x60;
/// Param1 bit 0 of GET_MEASUREMENTS: a signature is requested (DSP0274 §10.11).
pub const PARAM1_SIGNATURE_REQUESTED: u8 = 0x01;
/// Size of the GET_MEASUREMENTS request with a signature requested: 4 header bytes, 32-byte
/// nonce, 1-byte SlotIDParam (DSP0274 §10.11).
pub const REQUEST_LEN: usize = 37;
/// Size of the request and response nonces.
pub const NONCE_LEN: usize = 32;
/// Offset of the nonce in the request.
pub const REQUEST_NONCE_OFFSET: usize = 4;
/// Size of the MEASUREMENTS header before the record: 4 header bytes, NumberOfBlocks (1),
/// MeasurementRecordLength (3, little endian) (DSP0274 §10.11).
pub const RESPONSE_HEADER_LEN: usize = 8;
/// Measurement block header: Index, MeasurementSpecification, MeasurementSize (2, LE)
/// (DSP0274 §10.11, measurement block).
pub const BLOCK_HEADER_LEN: usize = 4;
/// DMTF measurement header: DMTFSpecMeasurementValueType, DMTFSpecMeasurementValueSize (2, LE)
/// (DSP0274 §10.11, DMTF measurement field).
pub const DMTF_HEADER_LEN: usize = 3;
/// MeasurementSpecification bit 0: DMTF.
pub const MEASUREMENT_SPEC_DMTF: u8 = 0x01;
/// The signature: ECDSA P-384 as raw big-endian r ‖ s (TPM_ALG_ECDSA_ECC_NIST_P384 with
/// SHA-384 as negotiated by the NVIDIA GPU).
pub const SIGNATURE_LEN: usize = 96;
/// Largest report accepted: NVML's buffer is `NVML_CC_GPU_ATTESTATION_REPORT_SIZE` (0x2000).
pub const MAX_REPORT_LEN: usize = 0x2000;

/// Opaque data field ids (NVIDIA), as named upstream.
pub mod opaque_id {
    /// Driver version, NUL-terminated ASCII.
    pub const DRIVER_VERSION: u16 = 3;
    /// GPU info.
    pub const GPU_INFO: u16 = 4;
    /// VBIOS version, 8 bytes little endian (GPU) or ASCII (NVSwitch).
    pub const VBIOS_VERSION: u16 = 6;
    /// NVDEC0 status: 0xAA enabled, 0x55 disabled.
    pub const NVDEC0_STATUS: u16 = 11;
    /// Measurement counts, u32 LE each.
    pub const MSRSCNT: u16 = 12;
    /// Board id.
    pub const BOARD_ID: u16 = 14;
    /// Chip SKU, NUL-padded ASCII.
    pub const CHIP_SKU: u16 = 15;
    /// Chip SKU modifier.
    pub const CHIP_SKU_MOD: u16 = 16;
    /// Project, NUL-padded ASCII.
    pub const PROJECT: u16 = 17;
    /// Project SKU, NUL-padded ASCII.
    pub const PROJECT_SKU: u16 = 18;
    /// Project SKU modifier.
    pub const PROJECT_SKU_MOD: u16 = 19;
    /// Firmware id (SHA-384), to be matched against the device certificate's DICE FWID.
    pub const FWID: u16 = 20;
    /// Protected PCIe status.
    pub const PROTECTED_PCIE_STATUS: u16 = 21;
    /// Opaque data layout version (ASCII, e.g. `1` on 580+ drivers).
    pub const OPAQUE_DATA_VERSION: u16 = 34;
    /// Chip info (Blackwell), NUL-terminated ASCII.
    pub const CHIP_INFO: u16 = 35;
    /// Feature flag (SPT / MPT / PPCIe mode).
    pub const FEATURE_FLAG: u16 = 36;
}

/// NVDEC0 status value that marks the decoder as disabled; RIM index 35 is then not compared
/// (nvtrust `verifier.py`, `is_msr_35_valid`).
pub const NVDEC0_DISABLED: u8 = 0x55;
/// The RIM index whose comparison depends on NVDEC0 being enabled.
pub const NVDEC0_RIM_INDEX: u32 = 35;
