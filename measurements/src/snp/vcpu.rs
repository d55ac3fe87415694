//! Guest vCPU signatures: the CPUID Fn0000_0001_EAX value QEMU puts in the VMSA's RDX (AMD
//! CPUID Specification #25481, "CPUID Fn0000_0001_EAX Family, Model, Stepping Identifiers"),
//! and the named CPU models of QEMU's `builtin_x86_defs` that `sev-snp-measure` knows.

/// A CPUID signature (family/model/stepping encoded as in EAX).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuSig(pub u32);

impl CpuSig {
    /// Encodes family, model and stepping (family above 0xf goes to the extended field).
    pub fn from_fms(family: u32, model: u32, stepping: u32) -> Self {
        let (family_low, family_high) = if family > 0xf {
            (0xf, (family - 0xf) & 0xff)
        } else {
            (family, 0)
        };
        let model_low = model & 0xf;
        let model_high = (model >> 4) & 0xf;
        let stepping_low = stepping & 0xf;
        Self(
            (family_high << 20)
                | (model_high << 16)
                | (family_low << 8)
                | (model_low << 4)
                | stepping_low,
        )
    }

    /// The signature of a named QEMU CPU model.
    pub fn from_type(name: &str) -> Option<Self> {
        VCPU_TYPES
            .iter()
            .find(|(n, ..)| *n == name)
            .map(|(_, f, m, s)| Self::from_fms(*f, *m, *s))
    }
}

/// QEMU CPU models and their (family, model, stepping), as `sev-snp-measure` 0.0.13 lists them.
pub const VCPU_TYPES: &[(&str, u32, u32, u32)] = &[
    ("EPYC", 23, 1, 2),
    ("EPYC-v1", 23, 1, 2),
    ("EPYC-v2", 23, 1, 2),
    ("EPYC-IBPB", 23, 1, 2),
    ("EPYC-v3", 23, 1, 2),
    ("EPYC-v4", 23, 1, 2),
    ("EPYC-Rome", 23, 49, 0),
    ("EPYC-Rome-v1", 23, 49, 0),
    ("EPYC-Rome-v2", 23, 49, 0),
    ("EPYC-Rome-v3", 23, 49, 0),
    ("EPYC-Milan", 25, 1, 1),
    ("EPYC-Milan-v1", 25, 1, 1),
    ("EPYC-Milan-v2", 25, 1, 1),
    ("EPYC-Genoa", 25, 17, 0),
    ("EPYC-Genoa-v1", 25, 17, 0),
    ("EPYC-Turin", 26, 0, 0),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_signatures() {
        assert_eq!(CpuSig::from_type("EPYC-v4"), Some(CpuSig(0x0080_0f12)));
        assert_eq!(CpuSig::from_type("EPYC-Milan"), Some(CpuSig(0x00a0_0f11)));
        assert_eq!(CpuSig::from_type("EPYC-Genoa"), Some(CpuSig(0x00a1_0f10)));
        assert_eq!(CpuSig::from_type("EPYC-Turin"), Some(CpuSig(0x00b0_0f00)));
        assert_eq!(CpuSig::from_type("Skylake"), None);
    }
}
