//! XPID derivation (KEE-1 §10; the same construction names a PEER `ptxn_id`): a UUID-v5 under
//! the SOOS namespace over
//! `initiating_KIA_id|responding_KIA_id|initiated_at|initiating_nonce|responding_nonce`.
//!
//! Side-effect free and deterministic: the same five inputs give the same id on any kernel,
//! and nothing is logged or audited here. The separator is `|`, so a field that contains one
//! is refused (`a|b` + `c` and `a` + `b|c` would otherwise name the same transaction); an
//! empty field is refused too. `initiated_at` is an RFC 3339 UTC timestamp with milliseconds
//! (`2026-12-06T05:00:00.000Z`, see [`rfc3339_ms`]) and the nonces are lowercase hex, so both
//! sides write the same bytes.
//!
//! The draft names a "SOOS Namespace UUID" without publishing its value. Until it does, this
//! crate uses the UUID-v5 of the draft's URL under the RFC 9562 URL namespace
//! ([`SOOS_NAMESPACE_URL`]); `docs/governance.md` lists test vectors computed with Python's
//! `uuid.uuid5`, an independent implementation, and a unit test checks them.

use uuid::Uuid;

/// The URL whose UUID-v5 (RFC 9562 URL namespace) is the SOOS namespace used here.
pub const SOOS_NAMESPACE_URL: &str = "https://datatracker.ietf.org/doc/draft-sato-soos-kee/";

/// `uuid5(NAMESPACE_URL, SOOS_NAMESPACE_URL)`, precomputed (a unit test recomputes it).
pub const SOOS_NAMESPACE: Uuid = Uuid::from_u128(0x23d0_5044_5a70_5b0f_84cc_45d1_8134_37fe);

/// Longest field accepted (bytes).
pub const MAX_FIELD_BYTES: usize = 256;

/// Why a derivation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XpidError {
    /// "xpid field `{0}` is empty".
    #[error("xpid field `{0}` is empty")]
    Empty(&'static str),
    /// "xpid field `{0}` contains the separator `|`".
    #[error("xpid field `{0}` contains the separator `|`")]
    Separator(&'static str),
    /// "xpid field `{0}` is longer than 256 bytes".
    #[error("xpid field `{0}` is longer than {MAX_FIELD_BYTES} bytes")]
    TooLong(&'static str),
}

/// The five inputs, by their KEE-1 names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XpidInput<'a> {
    /// KIA id of the initiating kernel (or agent).
    pub initiating_kia_id: &'a str,
    /// KIA id of the responding kernel (or agent).
    pub responding_kia_id: &'a str,
    /// RFC 3339 UTC with milliseconds: when the responding nonce was received.
    pub initiated_at: &'a str,
    /// The initiator's entropy contribution (lowercase hex).
    pub initiating_nonce: &'a str,
    /// The responder's entropy contribution (lowercase hex).
    pub responding_nonce: &'a str,
}

impl XpidInput<'_> {
    /// The exact name the UUID-v5 hashes.
    pub fn name(&self) -> Result<String, XpidError> {
        let fields = [
            ("initiating_kia_id", self.initiating_kia_id),
            ("responding_kia_id", self.responding_kia_id),
            ("initiated_at", self.initiated_at),
            ("initiating_nonce", self.initiating_nonce),
            ("responding_nonce", self.responding_nonce),
        ];
        for (name, value) in fields {
            if value.is_empty() {
                return Err(XpidError::Empty(name));
            }
            if value.contains('|') {
                return Err(XpidError::Separator(name));
            }
            if value.len() > MAX_FIELD_BYTES {
                return Err(XpidError::TooLong(name));
            }
        }
        Ok(fields.map(|(_, v)| v).join("|"))
    }
}

/// Derives the XPID (or `ptxn_id`) of `input`.
pub fn derive(input: &XpidInput<'_>) -> Result<Uuid, XpidError> {
    Ok(Uuid::new_v5(&SOOS_NAMESPACE, input.name()?.as_bytes()))
}

/// Unix milliseconds as RFC 3339 UTC with milliseconds (`1970-01-01T00:00:00.000Z`), the
/// form `initiated_at` takes.
pub fn rfc3339_ms(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let ms = unix_ms % 1000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's
/// `civil_from_days`, for non-negative day counts).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    fn input<'a>(a: &'a str, b: &'a str) -> XpidInput<'a> {
        XpidInput {
            initiating_kia_id: a,
            responding_kia_id: b,
            initiated_at: "2026-12-06T05:00:00.000Z",
            initiating_nonce: "00112233445566778899aabbccddeeff",
            responding_nonce: "ffeeddccbbaa99887766554433221100",
        }
    }

    #[test]
    fn namespace_is_the_v5_of_the_draft_url() {
        assert_eq!(
            Uuid::new_v5(&Uuid::NAMESPACE_URL, SOOS_NAMESPACE_URL.as_bytes()),
            SOOS_NAMESPACE
        );
    }

    /// Vectors computed with Python 3 `uuid.uuid5` (see docs/governance.md).
    #[test]
    fn matches_vectors_from_an_independent_implementation() {
        let x = derive(&input("kia:tokyo-master", "kia:nagoya-local")).unwrap();
        assert_eq!(x.to_string(), "570c5aa4-8261-5288-8476-1635979bac56");
        assert_eq!(x.get_version_num(), 5);
        let v = |a: &str, b: &str, at: &str, n1: &str, n2: &str| {
            derive(&XpidInput {
                initiating_kia_id: a,
                responding_kia_id: b,
                initiated_at: at,
                initiating_nonce: n1,
                responding_nonce: n2,
            })
            .unwrap()
            .to_string()
        };
        let (t, n1, n2) = (
            "2026-12-06T05:00:00.000Z",
            "00112233445566778899aabbccddeeff",
            "ffeeddccbbaa99887766554433221100",
        );
        assert_eq!(
            v("k1", "k3", t, n1, n2),
            "519d3cb9-7374-578a-a39b-17b9fff05e35"
        );
        assert_eq!(
            v("k3", "k1", t, n1, n2),
            "a15182ce-c2ba-5ec5-a5e1-c52420262033"
        );
        assert_eq!(
            v(
                "MyAuberge-KIA-7",
                "PonyhouseFarm-KIA-2",
                "1970-01-01T00:00:00.000Z",
                &"aa".repeat(32),
                &"bb".repeat(32)
            ),
            "069dec42-aa36-5fa5-9c24-040eb318289a"
        );
    }

    #[test]
    fn deterministic_and_order_sensitive() {
        let a = derive(&input("k1", "k2")).unwrap();
        assert_eq!(a, derive(&input("k1", "k2")).unwrap());
        assert_ne!(a, derive(&input("k2", "k1")).unwrap());
        let mut other = input("k1", "k2");
        other.responding_nonce = "ffeeddccbbaa99887766554433221101";
        assert_ne!(a, derive(&other).unwrap());
    }

    #[test]
    fn ambiguous_or_empty_fields_are_refused() {
        assert_eq!(
            derive(&input("a|b", "c")),
            Err(XpidError::Separator("initiating_kia_id"))
        );
        assert_eq!(
            derive(&input("", "c")),
            Err(XpidError::Empty("initiating_kia_id"))
        );
        let long = "x".repeat(MAX_FIELD_BYTES + 1);
        assert_eq!(
            derive(&input("a", &long)),
            Err(XpidError::TooLong("responding_kia_id"))
        );
    }

    #[test]
    fn timestamps_are_rfc3339_utc_with_ms() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(rfc3339_ms(1_796_533_200_000), "2026-12-06T05:00:00.000Z");
    }
}
