//! What the image is built from. Changing any of these changes every measurement of the
//! image, so each is a named constant, recorded in the manifest.

/// The Debian kernel package (bookworm-security; its `vmlinuz` is the Debian-signed PE image).
pub const KERNEL_PACKAGE: &str = "linux-image-6.1.0-56-amd64";
/// Its exact version.
pub const KERNEL_VERSION: &str = "6.1.192-2";
/// SHA-256 of the `.deb` as Debian's archive publishes it (`apt-cache show`, `SHA256:`).
pub const KERNEL_DEB_SHA256: &str =
    "a86e2049672f52354c4536a089203b6c82639420424d31c91cf31a181fd4d8f1";
/// `uname -r` of that kernel: its module directory.
pub const KERNEL_RELEASE: &str = "6.1.0-56-amd64";

/// The fixed kernel command line: serial console, reboot (QEMU exits with `-no-reboot`) on
/// panic, and the enclave as the initramfs's init.
pub const CMDLINE: &str = "console=ttyS0 panic=-1 rdinit=/init";

/// Kernel modules the enclave needs, by name (dependencies are added from `modules.dep`):
/// vsock and its virtio transport, the virtio console (the development channel), QEMU's fw_cfg
/// (`/sys/firmware/qemu_fw_cfg`: where the host hands the enclave its sealed share), and the
/// SEV-SNP guest driver (`/dev/sev-guest`), all behind the virtio PCI transport. The TPM CRB and
/// TIS drivers are built into Debian's kernel; its 6.1 series has no TDX guest driver (that needs 6.2+, Debian
/// trixie), so a TDX image needs a newer pinned kernel.
pub const MODULES: &[&str] = &[
    "virtio_pci",
    "vsock",
    "vmw_vsock_virtio_transport_common",
    "vmw_vsock_virtio_transport",
    "virtio_console",
    "sev-guest",
    "qemu_fw_cfg",
];

/// Libraries loaded with `dlopen` (invisible to `ldd`): the TSS2 TCTI the enclave opens for
/// `/dev/tpmrm0`.
pub const DLOPEN_LIBRARIES: &[&str] = &["libtss2-tcti-device.so.0"];

/// Debian's `edk2` source package `image ovmf-amdsev` builds the AmdSev OVMF from (bookworm;
/// the same version as the `ovmf` binary package whose `OVMF.fd` the TDX and firmware-only SNP
/// values use).
pub const EDK2_VERSION: &str = "2022.11-6+deb12u2";
