//! Expected launch measurements of a confidential VM, computed offline from the image itself
//! (the RATS "reference value provider" role): the AMD SEV-SNP launch digest
//! ([`snp`], bit-identical to `sev-snp-measure` 0.0.13), Intel TDX MRTD and direct-boot
//! RTMR1/RTMR2 ([`tdx`]), and the reference-values document the verifier loads.
//!
//! A verifier can only appraise a kernel against the measurement its operator expected; that
//! expectation must not come from the machine being appraised. Everything here is a pure
//! function of files: the firmware (parsed by the [`ovmf`] crate), the kernel, the initrd,
//! the command line and the VM shape (vCPUs, CPU model, memory). Inputs come from outside the
//! process and are parsed once at the edge; errors say which input and which check.

#![forbid(unsafe_code)]

pub mod reference;
pub mod snp;
pub mod tdx;
pub mod tpm;

/// Parses an integer the way Python's `int(text, 0)` does (`sev-snp-measure` parses
/// `--guest-features` and `--vcpu-sig` so): an optional `0x`/`0o`/`0b` prefix, `_` between
/// digits, and no leading zero on a non-zero decimal.
pub fn parse_int_auto(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let lower = t.to_ascii_lowercase();
    let (digits, radix) = if let Some(d) = lower.strip_prefix("0x") {
        (d, 16)
    } else if let Some(d) = lower.strip_prefix("0o") {
        (d, 8)
    } else if let Some(d) = lower.strip_prefix("0b") {
        (d, 2)
    } else {
        if lower.len() > 1 && lower.starts_with('0') && lower.chars().any(|c| c != '0' && c != '_')
        {
            return Err(format!("invalid integer `{text}` (leading zero)"));
        }
        (lower.as_str(), 10)
    };
    let digits = digits.strip_prefix('_').unwrap_or(digits);
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
    {
        return Err(format!("invalid integer `{text}`"));
    }
    u64::from_str_radix(&digits.replace('_', ""), radix)
        .map_err(|e| format!("invalid integer `{text}`: {e}"))
}

#[cfg(test)]
mod tests {
    use super::parse_int_auto;

    #[test]
    fn python_int_base_zero() {
        assert_eq!(parse_int_auto("0x21"), Ok(0x21));
        assert_eq!(parse_int_auto("33"), Ok(33));
        assert_eq!(parse_int_auto("0b101"), Ok(5));
        assert_eq!(parse_int_auto("0o17"), Ok(15));
        assert_eq!(parse_int_auto("0x_2_1"), Ok(0x21));
        assert_eq!(parse_int_auto("0"), Ok(0));
        assert_eq!(parse_int_auto("00"), Ok(0));
        assert!(parse_int_auto("033").is_err());
        assert!(parse_int_auto("0x").is_err());
        assert!(parse_int_auto("1__0").is_err());
        assert!(parse_int_auto("-1").is_err());
    }
}
