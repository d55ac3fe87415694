//! Appraisal policy for GPU evidence. The default is strict: RIMs required, FWID not required
//! only because reports from drivers before 550 do not carry one (see [`GpuPolicy`]).

use super::claims::{Claim, Tier};
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;

/// What a GPU must show to be affirmed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GpuPolicy {
    /// Driver versions accepted verbatim (case-insensitive); empty = any that meets
    /// `min_driver_version`.
    pub allowed_driver_versions: Vec<String>,
    /// Lowest driver version accepted, compared numerically per dotted component.
    pub min_driver_version: Option<String>,
    /// VBIOS versions accepted verbatim (case-insensitive); empty = any that meets
    /// `min_vbios_version`.
    pub allowed_vbios_versions: Vec<String>,
    /// Lowest VBIOS version accepted, compared per dotted component as hex.
    pub min_vbios_version: Option<String>,
    /// Whether a verified driver RIM and VBIOS RIM must be given and every active measurement
    /// must match. Default `true`.
    pub require_rims: bool,
    /// Whether the report must carry an FWID (drivers from 550 on do); when it does, it is
    /// always compared with the certificate's. Default `false`.
    pub require_report_fwid: bool,
}

impl Default for GpuPolicy {
    fn default() -> Self {
        Self {
            allowed_driver_versions: Vec::new(),
            min_driver_version: None,
            allowed_vbios_versions: Vec::new(),
            min_vbios_version: None,
            require_rims: true,
            require_report_fwid: false,
        }
    }
}

/// Compares dotted versions component by component in `radix`; `None` when either does not
/// parse (the caller fails closed).
pub fn compare_versions(a: &str, b: &str, radix: u32) -> Option<Ordering> {
    let parse = |s: &str| {
        s.split('.')
            .map(|c| u64::from_str_radix(c, radix).ok())
            .collect::<Option<Vec<u64>>>()
    };
    let (mut x, mut y) = (parse(a)?, parse(b)?);
    let len = x.len().max(y.len());
    x.resize(len, 0);
    y.resize(len, 0);
    Some(x.cmp(&y))
}

/// A version claim: `observed` against an allow-list and a minimum.
pub(crate) fn version_claim(
    name: &str,
    what: &str,
    observed: Option<&str>,
    allowed: &[String],
    min: Option<&str>,
    radix: u32,
) -> Claim {
    let Some(v) = observed else {
        return Claim::new(
            name,
            Tier::Contraindicated,
            format!("report carries no {what}"),
        );
    };
    if !allowed.is_empty() && !allowed.iter().any(|a| a.eq_ignore_ascii_case(v)) {
        return Claim::new(
            name,
            Tier::Contraindicated,
            format!("{what} `{v}` is not in the policy's allowed list"),
        );
    }
    if let Some(m) = min {
        match compare_versions(v, m, radix) {
            Some(Ordering::Less) => {
                return Claim::new(
                    name,
                    Tier::Contraindicated,
                    format!("{what} `{v}` is below the policy minimum `{m}`"),
                )
            }
            None => {
                return Claim::new(
                    name,
                    Tier::Contraindicated,
                    format!("{what} `{v}` cannot be compared with the policy minimum `{m}`"),
                )
            }
            Some(_) => {}
        }
    }
    Claim::new(
        name,
        Tier::Affirming,
        format!("{what} `{v}` meets the policy"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_comparison() {
        assert_eq!(
            compare_versions("550.90.07", "550.90.7", 10),
            Some(Ordering::Equal)
        );
        assert_eq!(
            compare_versions("550.144.03", "550.90.07", 10),
            Some(Ordering::Greater)
        );
        assert_eq!(
            compare_versions("535.86", "535.86.09", 10),
            Some(Ordering::Less)
        );
        assert_eq!(
            compare_versions("96.00.9f.00.01", "96.00.5E.00.01", 16),
            Some(Ordering::Greater)
        );
        assert_eq!(compare_versions("r550", "550", 10), None);
    }

    #[test]
    fn version_claims_fail_closed() {
        let c = version_claim(
            "d",
            "driver version",
            Some("535.86.09"),
            &[],
            Some("550"),
            10,
        );
        assert_eq!(c.status, Tier::Contraindicated);
        let c = version_claim(
            "d",
            "driver version",
            Some("550.90.07"),
            &["550.90.07".into()],
            None,
            10,
        );
        assert_eq!(c.status, Tier::Affirming);
        let c = version_claim("d", "driver version", Some("x"), &[], Some("550"), 10);
        assert_eq!(c.status, Tier::Contraindicated);
        assert_eq!(
            version_claim("d", "x", None, &[], None, 10).status,
            Tier::Contraindicated
        );
    }
}
