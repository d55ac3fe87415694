//! What QEMU writes into a Linux kernel's setup header before the firmware sees it
//! (`hw/i386/x86-common.c`, `x86_load_linux`, QEMU up to 10.1; from 10.2 the measured copy is
//! left unpatched). OVMF's direct boot loads the patched bytes and measures them, so RTMR1 (and
//! vTPM PCR 4) depend on the guest's memory size and the initrd size. Field offsets: Linux
//! `Documentation/arch/x86/boot.rst`, "The real-mode kernel header".

/// Why a kernel could not be patched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PatchError {
    /// "kernel image is {len} bytes, shorter than a setup header".
    #[error("kernel image is {len} bytes, shorter than a setup header")]
    TooShort {
        /// Image size.
        len: usize,
    },
    /// "kernel boot protocol {0:#x} is too old for an initrd".
    #[error("kernel boot protocol {0:#x} is too old for an initrd")]
    OldProtocol(u16),
    /// "initrd of {initrd} bytes does not fit below {max:#x}".
    #[error("initrd of {initrd} bytes does not fit below {max:#x}")]
    InitrdTooLarge {
        /// initrd size.
        initrd: u32,
        /// Highest initrd address.
        max: u32,
    },
}

/// The guest configuration QEMU's patch depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QemuLoad {
    /// Guest memory in bytes.
    pub memory_bytes: u64,
    /// Size of the initrd (0 = none).
    pub initrd_bytes: u32,
    /// ACPI data reserved below the top of low memory (`pcmc->acpi_data_size`, 0x28000 for
    /// the q35 and i440fx machines).
    pub acpi_data_size: u32,
}

/// q35/i440fx `acpi_data_size`.
pub const ACPI_DATA_SIZE: u32 = 0x20000 + 0x8000;

fn put(k: &mut [u8], at: usize, bytes: &[u8]) {
    if let Some(dst) = k.get_mut(at..at + bytes.len()) {
        dst.copy_from_slice(bytes);
    }
}

fn u16_at(k: &[u8], at: usize) -> u16 {
    k.get(at..at + 2)
        .and_then(|s| s.try_into().ok())
        .map(u16::from_le_bytes)
        .unwrap_or(0)
}

fn u32_at(k: &[u8], at: usize) -> u32 {
    k.get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .map(u32::from_le_bytes)
        .unwrap_or(0)
}

/// Applies QEMU's setup-header patch to a copy of `kernel`.
pub fn qemu_patch(kernel: &[u8], load: QemuLoad) -> Result<Vec<u8>, PatchError> {
    if kernel.len() < 0x1000 {
        return Err(PatchError::TooShort { len: kernel.len() });
    }
    let mut k = kernel.to_vec();
    let protocol = if k.get(0x202..0x206) == Some(b"HdrS") {
        u16_at(&k, 0x206)
    } else {
        0
    };
    let loadflags = k.get(0x211).copied().unwrap_or(0);
    let (real_addr, cmdline_addr): (u32, u32) = if protocol < 0x200 || loadflags & 0x01 == 0 {
        (0x90000, 0x9a000)
    } else {
        (0x10000, 0x20000)
    };
    if protocol >= 0x200 {
        put(&mut k, 0x210, &[0xb0]); // type_of_loader: QEMU
    }
    if protocol >= 0x201 {
        put(&mut k, 0x211, &[loadflags | 0x80]); // CAN_USE_HEAP
                                                 // heap_end_ptr is 16 bits (QEMU: stw_le_p).
        let heap_end = u16::try_from(cmdline_addr - real_addr - 0x200).unwrap_or(0);
        put(&mut k, 0x224, &heap_end.to_le_bytes());
    }
    if protocol >= 0x202 {
        put(&mut k, 0x228, &cmdline_addr.to_le_bytes());
    } else {
        put(&mut k, 0x20, &0xa33fu16.to_le_bytes());
        let offset = u16::try_from(cmdline_addr - real_addr).unwrap_or(0);
        put(&mut k, 0x22, &offset.to_le_bytes());
    }
    if load.initrd_bytes > 0 {
        if protocol < 0x200 {
            return Err(PatchError::OldProtocol(protocol));
        }
        let mut initrd_max: u32 = if protocol >= 0x20c && u16_at(&k, 0x236) & 0x40 != 0 {
            u32::MAX
        } else if protocol >= 0x203 && u32_at(&k, 0x22c) != 0 {
            u32_at(&k, 0x22c)
        } else {
            0x37ff_ffff
        };
        let lowmem: u64 = if load.memory_bytes < 0xb000_0000 {
            0xb000_0000
        } else {
            0x8000_0000
        };
        let below_4g = u32::try_from(load.memory_bytes.min(lowmem)).unwrap_or(u32::MAX);
        let limit = below_4g.saturating_sub(load.acpi_data_size);
        if initrd_max >= limit {
            initrd_max = limit.saturating_sub(1);
        }
        if load.initrd_bytes >= initrd_max {
            return Err(PatchError::InitrdTooLarge {
                initrd: load.initrd_bytes,
                max: initrd_max,
            });
        }
        let addr = (initrd_max - load.initrd_bytes) & !4095;
        put(&mut k, 0x218, &addr.to_le_bytes());
        put(&mut k, 0x21c, &load.initrd_bytes.to_le_bytes());
    }
    Ok(k)
}
