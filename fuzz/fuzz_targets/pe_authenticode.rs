//! A kernel image (`measure tdx --kernel`, `measure reference`): QEMU's setup-header patch and
//! the PE/COFF Authenticode digest OVMF measures. Either succeeds or names what was wrong.
#![no_main]

use libfuzzer_sys::fuzz_target;
use measurements::tdx::{authenticode, linux};

fuzz_target!(|data: &[u8]| {
    let _ = authenticode::digest::<sha2::Sha384>(data);
    if let Ok(patched) = linux::qemu_patch(
        data,
        linux::QemuLoad {
            memory_bytes: 1 << 30,
            initrd_bytes: 1 << 20,
            acpi_data_size: linux::ACPI_DATA_SIZE,
        },
    ) {
        assert_eq!(patched.len(), data.len());
        let _ = authenticode::digest::<sha2::Sha256>(&patched);
    }
});
