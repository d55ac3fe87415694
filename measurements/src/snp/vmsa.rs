//! Initial VMSA pages (the register state of each vCPU at launch) as QEMU, EC2 and GCE set
//! them up. Layout: AMD64 APM volume 2, table B-4 "VMSA Layout, State Save Area for SEV-ES"
//! (the Linux kernel's `struct sev_es_save_area`); values: `sev-snp-measure` 0.0.13
//! `vmsa.py`, which mirrors KVM's and QEMU's reset state.

use super::gctx::PAGE_BYTES;

/// Which VMM launches the guest (they differ in a few reset values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmmType {
    /// QEMU/KVM.
    Qemu,
    /// AWS EC2.
    Ec2,
    /// Google Compute Engine.
    Gce,
}

impl VmmType {
    /// Parses `sev-snp-measure`'s names (`QEMU`, `ec2`, `gce`), case as it accepts them.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "QEMU" => Some(Self::Qemu),
            "ec2" => Some(Self::Ec2),
            "gce" => Some(Self::Gce),
            _ => None,
        }
    }
}

/// The BSP starts at the architectural reset vector.
pub const BSP_EIP: u32 = 0xffff_fff0;

/// Byte offsets in the save area (APM vol. 2 table B-4).
mod off {
    pub const ES: usize = 0x000;
    pub const CS: usize = 0x010;
    pub const SS: usize = 0x020;
    pub const DS: usize = 0x030;
    pub const FS: usize = 0x040;
    pub const GS: usize = 0x050;
    pub const GDTR: usize = 0x060;
    pub const LDTR: usize = 0x070;
    pub const IDTR: usize = 0x080;
    pub const TR: usize = 0x090;
    pub const EFER: usize = 0x0d0;
    pub const CR4: usize = 0x148;
    pub const CR0: usize = 0x158;
    pub const DR7: usize = 0x160;
    pub const DR6: usize = 0x168;
    pub const RFLAGS: usize = 0x170;
    pub const RIP: usize = 0x178;
    pub const G_PAT: usize = 0x268;
    pub const RDX: usize = 0x310;
    pub const SEV_FEATURES: usize = 0x3b0;
    pub const XCR0: usize = 0x3e8;
    pub const MXCSR: usize = 0x408;
    pub const X87_FCW: usize = 0x410;
}

struct Page([u8; PAGE_BYTES]);

impl Page {
    fn put(&mut self, at: usize, bytes: &[u8]) {
        if let Some(dst) = self.0.get_mut(at..at + bytes.len()) {
            dst.copy_from_slice(bytes);
        }
    }

    fn u64(&mut self, at: usize, v: u64) {
        self.put(at, &v.to_le_bytes());
    }

    /// A `vmcb_seg`: selector (u16), attributes (u16), limit (u32), base (u64).
    fn seg(&mut self, at: usize, selector: u16, attrib: u16, limit: u32, base: u64) {
        self.put(at, &selector.to_le_bytes());
        self.put(at + 2, &attrib.to_le_bytes());
        self.put(at + 4, &limit.to_le_bytes());
        self.put(at + 8, &base.to_le_bytes());
    }
}

/// Builds the save area of a vCPU that starts at `eip`.
pub fn save_area(eip: u32, sev_features: u64, vcpu_sig: u32, vmm: VmmType) -> [u8; PAGE_BYTES] {
    let (mut cs_flags, ss_flags, tr_flags, rdx, mxcsr, fcw, g_pat): (
        u16,
        u16,
        u16,
        u64,
        u32,
        u16,
        u64,
    ) = match vmm {
        VmmType::Qemu => (
            0x9b,
            0x93,
            0x8b,
            u64::from(vcpu_sig),
            0x1f80,
            0x37f,
            0x0007_0406_0007_0406,
        ),
        VmmType::Ec2 => (0x9b, 0x92, 0x83, 0x600, 0, 0, 0x0007_0406_0007_0406),
        VmmType::Gce => (0x9b, 0x93, 0x8b, 0x600, 0, 0, 0x0007_0106),
    };
    if vmm == VmmType::Ec2 && eip == BSP_EIP {
        cs_flags = 0x9a;
    }
    let mut p = Page([0u8; PAGE_BYTES]);
    p.seg(off::ES, 0, 0x93, 0xffff, 0);
    p.seg(
        off::CS,
        0xf000,
        cs_flags,
        0xffff,
        u64::from(eip & 0xffff_0000),
    );
    p.seg(off::SS, 0, ss_flags, 0xffff, 0);
    p.seg(off::DS, 0, 0x93, 0xffff, 0);
    p.seg(off::FS, 0, 0x93, 0xffff, 0);
    p.seg(off::GS, 0, 0x93, 0xffff, 0);
    p.seg(off::GDTR, 0, 0, 0xffff, 0);
    p.seg(off::IDTR, 0, 0, 0xffff, 0);
    p.seg(off::LDTR, 0, 0x82, 0xffff, 0);
    p.seg(off::TR, 0, tr_flags, 0xffff, 0);
    p.u64(off::EFER, 0x1000); // KVM sets EFER.SVME
    p.u64(off::CR4, 0x40); // KVM sets CR4.MCE
    p.u64(off::CR0, 0x10);
    p.u64(off::DR7, 0x400);
    p.u64(off::DR6, 0xffff_0ff0);
    p.u64(off::RFLAGS, 0x2);
    p.u64(off::RIP, u64::from(eip & 0xffff));
    p.u64(off::G_PAT, g_pat);
    p.u64(off::RDX, rdx);
    p.u64(off::SEV_FEATURES, sev_features);
    p.u64(off::XCR0, 0x1);
    p.put(off::MXCSR, &mxcsr.to_le_bytes());
    p.put(off::X87_FCW, &fcw.to_le_bytes());
    p.0
}
