//! Endorser role: the AMD key hierarchy that vouches for a report's signing key.
//!
//! AMD roots are pinned as data files beside this module (`builtin/<product>/{ark,ask,asvk}.pem`,
//! copied unchanged from virtee/sev and confidential-containers/trustee, which took them from
//! the AMD Key Distribution Service). The chain is ARK (self-signed, RSA-PSS 4096) → ASK →
//! VCEK for chip-unique keys, and ARK → ASVK → VLEK for cloud-loaded keys. The RSASSA-PSS
//! (SHA-384, MGF1-SHA-384, 48-byte salt) checks go through `ring` over the DER TBS certificate
//! (`sev`'s pure-Rust `crypto_nossl` backend did the same job about 10x slower: it dominated a
//! whole `verify snp` run); issuer names must chain too. The VEK's TCB extensions (VCEK
//! specification 57230, Table 8 "VCEK Certificate Extensions") are read here from the same
//! parsed certificate.
//!
//! The pinned ARK/ASK/ASVK are checked once per process and cached; each VEK is checked every
//! time unless the caller keeps the [`VerifiedVek`].

use super::error::SnpError;
use super::report::{SigningKey, TcbParts};
use std::sync::OnceLock;
use x509_cert::der::asn1::OctetString;
use x509_cert::der::{Decode, Encode};
use x509_cert::Certificate;

/// An AMD EPYC generation with its own root key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Product {
    /// 3rd generation EPYC (Zen 3, CPUID family 0x19).
    Milan,
    /// 4th generation EPYC (Zen 4, CPUID family 0x19).
    Genoa,
    /// 5th generation EPYC (Zen 5, CPUID family 0x1A).
    Turin,
}

impl Product {
    /// Every product with a pinned root, in the order inference tries them.
    pub const ALL: [Product; 3] = [Product::Milan, Product::Genoa, Product::Turin];

    /// Lowercase name (`milan`, `genoa`, `turin`).
    pub fn as_str(&self) -> &'static str {
        match self {
            Product::Milan => "milan",
            Product::Genoa => "genoa",
            Product::Turin => "turin",
        }
    }

    /// CPUID family a report (version 3 and later) from this product carries.
    pub fn cpuid_family(&self) -> u8 {
        match self {
            Product::Milan | Product::Genoa => 0x19,
            Product::Turin => 0x1A,
        }
    }

    /// Bytes of the VCEK `hwID` extension: the full 64-byte CHIP_ID before Turin, its first
    /// 8 bytes on Turin.
    pub fn hwid_bytes(&self) -> usize {
        match self {
            Product::Milan | Product::Genoa => 64,
            Product::Turin => 8,
        }
    }

    fn pinned_pem(&self) -> (&'static [u8], &'static [u8], &'static [u8]) {
        match self {
            Product::Milan => (
                include_bytes!("builtin/milan/ark.pem"),
                include_bytes!("builtin/milan/ask.pem"),
                include_bytes!("builtin/milan/asvk.pem"),
            ),
            Product::Genoa => (
                include_bytes!("builtin/genoa/ark.pem"),
                include_bytes!("builtin/genoa/ask.pem"),
                include_bytes!("builtin/genoa/asvk.pem"),
            ),
            Product::Turin => (
                include_bytes!("builtin/turin/ark.pem"),
                include_bytes!("builtin/turin/ask.pem"),
                include_bytes!("builtin/turin/asvk.pem"),
            ),
        }
    }
}

impl std::fmt::Display for Product {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// "unknown amd product `{0}` (expected milan, genoa or turin)".
#[derive(Debug, thiserror::Error)]
#[error("unknown amd product `{0}` (expected milan, genoa or turin)")]
pub struct UnknownProduct(pub String);

impl std::str::FromStr for Product {
    type Err = UnknownProduct;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "milan" => Ok(Product::Milan),
            "genoa" => Ok(Product::Genoa),
            "turin" => Ok(Product::Turin),
            _ => Err(UnknownProduct(s.to_owned())),
        }
    }
}

/// OIDs of the VEK extensions (VCEK spec 57230, Table 8).
pub mod oid {
    /// blSPL: boot loader security patch level.
    pub const BOOTLOADER: &str = "1.3.6.1.4.1.3704.1.3.1";
    /// teeSPL: PSP OS security patch level.
    pub const TEE: &str = "1.3.6.1.4.1.3704.1.3.2";
    /// snpSPL: SNP firmware security patch level.
    pub const SNP: &str = "1.3.6.1.4.1.3704.1.3.3";
    /// ucodeSPL: microcode security patch level.
    pub const MICROCODE: &str = "1.3.6.1.4.1.3704.1.3.8";
    /// fmcSPL: FMC security patch level (Turin and later).
    pub const FMC: &str = "1.3.6.1.4.1.3704.1.3.9";
    /// hwID: the chip id (VCEK only).
    pub const HWID: &str = "1.3.6.1.4.1.3704.1.4";
}

/// The pinned CA certificates of one product, checked once.
struct PinnedCa {
    ask: Certificate,
    asvk: Certificate,
}

/// RSASSA-PSS (PKCS #1 v2.1), the only signature AMD's ARK/ASK/ASVK use.
const RSASSA_PSS: &str = "1.2.840.113549.1.1.10";

/// Checks that `issuer` signed `cert`: issuer name chains, the algorithm is RSASSA-PSS, and the
/// signature over the DER TBS certificate verifies with ring's RSA-PSS-SHA384 (salt 48, MGF1
/// SHA-384: any other parameters fail the verification).
fn rsa_pss_signed_by(cert: &Certificate, issuer: &Certificate) -> Result<(), String> {
    if cert.tbs_certificate.issuer != issuer.tbs_certificate.subject {
        return Err("issuer name is not the signer's subject".into());
    }
    if cert.signature_algorithm.oid.to_string() != RSASSA_PSS {
        return Err(format!(
            "signature algorithm {} is not rsassa-pss",
            cert.signature_algorithm.oid
        ));
    }
    let tbs = cert.tbs_certificate.to_der().map_err(|e| e.to_string())?;
    let sig = cert
        .signature
        .as_bytes()
        .ok_or_else(|| "signature is not a whole number of bytes".to_string())?;
    let key = issuer
        .tbs_certificate
        .subject_public_key_info
        .subject_public_key
        .raw_bytes();
    ring::signature::UnparsedPublicKey::new(&ring::signature::RSA_PSS_2048_8192_SHA384, key)
        .verify(&tbs, sig)
        .map_err(|_| "rsa-pss signature does not verify under the issuer key".to_string())
}

fn pem_cert(pem: &[u8]) -> Result<Certificate, String> {
    use x509_cert::der::DecodePem;
    Certificate::from_pem(pem).map_err(|e| e.to_string())
}

fn load_pinned(product: Product) -> Result<PinnedCa, String> {
    let (ark_pem, ask_pem, asvk_pem) = product.pinned_pem();
    let ark = pem_cert(ark_pem)?;
    let ask = pem_cert(ask_pem)?;
    let asvk = pem_cert(asvk_pem)?;
    rsa_pss_signed_by(&ark, &ark).map_err(|e| format!("ark: {e}"))?;
    rsa_pss_signed_by(&ask, &ark).map_err(|e| format!("ask: {e}"))?;
    rsa_pss_signed_by(&asvk, &ark).map_err(|e| format!("asvk: {e}"))?;
    Ok(PinnedCa { ask, asvk })
}

fn pinned(product: Product) -> Result<&'static PinnedCa, SnpError> {
    static MILAN: OnceLock<Result<PinnedCa, String>> = OnceLock::new();
    static GENOA: OnceLock<Result<PinnedCa, String>> = OnceLock::new();
    static TURIN: OnceLock<Result<PinnedCa, String>> = OnceLock::new();
    let cell = match product {
        Product::Milan => &MILAN,
        Product::Genoa => &GENOA,
        Product::Turin => &TURIN,
    };
    cell.get_or_init(|| load_pinned(product))
        .as_ref()
        .map_err(|msg| SnpError::PinnedRoot {
            product,
            source: std::io::Error::other(msg.clone()),
        })
}

/// The TCB and chip identity a VEK certifies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VekClaims {
    /// Certified TCB components.
    pub tcb: TcbParts,
    /// `hwID` (VCEK only): 64 bytes before Turin, 8 on Turin.
    pub hwid: Option<Vec<u8>>,
}

/// A VEK that chains to a pinned AMD root: the key that may sign reports and what it certifies.
/// Keep it to verify many reports from the same chip without re-checking the chain.
#[derive(Debug, Clone)]
pub struct VerifiedVek {
    product: Product,
    kind: SigningKey,
    /// SEC1 uncompressed point of the key (what `ring` verifies with).
    point: Vec<u8>,
    claims: VekClaims,
}

impl VerifiedVek {
    /// Product whose root endorses the key.
    pub fn product(&self) -> Product {
        self.product
    }
    /// VCEK or VLEK.
    pub fn kind(&self) -> SigningKey {
        self.kind
    }
    /// What the certificate certifies.
    pub fn claims(&self) -> &VekClaims {
        &self.claims
    }
    /// The key as a SEC1 uncompressed P-384 point.
    pub(crate) fn point(&self) -> &[u8] {
        &self.point
    }
}

/// Checks that `vek_der` is a `kind` key (VCEK under the ASK, VLEK under the ASVK) of
/// `product`, or of whichever pinned product endorses it when `product` is `None`, and reads
/// its public key and TCB extensions.
pub fn verify_vek(
    vek_der: &[u8],
    product: Option<Product>,
    kind: SigningKey,
) -> Result<VerifiedVek, SnpError> {
    let x509 = x509_cert::Certificate::from_der(vek_der).map_err(|e| {
        SnpError::VekMalformed(std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    })?;
    // Trailing bytes after the certificate are not part of what AMD signed: refuse them.
    let reencoded = x509.to_der().map_err(|e| {
        SnpError::VekMalformed(std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    })?;
    if reencoded.as_slice() != vek_der {
        return Err(SnpError::VekMalformed(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "vek der is not canonical or has trailing bytes",
        )));
    }
    let candidates: &[Product] = match &product {
        Some(p) => std::slice::from_ref(p),
        None => &Product::ALL,
    };
    let mut endorsed = None;
    let mut last = None;
    for &p in candidates {
        let ca = pinned(p)?;
        let signer = match kind {
            SigningKey::Vcek => &ca.ask,
            SigningKey::Vlek => &ca.asvk,
            SigningKey::Other(key) => return Err(SnpError::UnsupportedSigningKey { key }),
        };
        match rsa_pss_signed_by(&x509, signer) {
            Ok(()) => {
                endorsed = Some(p);
                break;
            }
            Err(msg) => last = Some((p, std::io::Error::other(msg))),
        }
    }
    let product = match (endorsed, product, last) {
        (Some(p), _, _) => p,
        (None, Some(_), Some((p, source))) => {
            return Err(SnpError::ChainBroken { product: p, source })
        }
        _ => return Err(SnpError::NoProductRoot),
    };
    let key = p384::ecdsa::VerifyingKey::from_sec1_bytes(
        x509.tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .raw_bytes(),
    )
    .map_err(|_| SnpError::VekKey)?;
    let claims = read_claims(&x509, product, kind)?;
    Ok(VerifiedVek {
        product,
        kind,
        point: key.to_encoded_point(false).as_bytes().to_vec(),
        claims,
    })
}

fn extension<'a>(
    cert: &'a x509_cert::Certificate,
    name: &'static str,
    oid: &'static str,
) -> Result<Option<&'a [u8]>, SnpError> {
    let id = x509_cert::der::oid::ObjectIdentifier::new(oid)
        .map_err(|_| SnpError::ExtensionMalformed { name })?;
    let mut found = None;
    for ext in cert.tbs_certificate.extensions.iter().flatten() {
        if ext.extn_id == id {
            if found.is_some() {
                // Two values for one TCB component: refuse rather than pick one.
                return Err(SnpError::ExtensionMalformed { name });
            }
            found = Some(ext.extn_value.as_bytes());
        }
    }
    Ok(found)
}

fn spl(
    cert: &x509_cert::Certificate,
    name: &'static str,
    oid: &'static str,
) -> Result<u8, SnpError> {
    let value = extension(cert, name, oid)?.ok_or(SnpError::ExtensionMissing { name, oid })?;
    u8::from_der(value).map_err(|_| SnpError::ExtensionMalformed { name })
}

fn read_claims(
    cert: &x509_cert::Certificate,
    product: Product,
    kind: SigningKey,
) -> Result<VekClaims, SnpError> {
    let fmc = match product {
        Product::Turin => Some(spl(cert, "fmcSPL", oid::FMC)?),
        Product::Milan | Product::Genoa => None,
    };
    let tcb = TcbParts {
        fmc,
        bootloader: spl(cert, "blSPL", oid::BOOTLOADER)?,
        tee: spl(cert, "teeSPL", oid::TEE)?,
        snp: spl(cert, "snpSPL", oid::SNP)?,
        microcode: spl(cert, "ucodeSPL", oid::MICROCODE)?,
    };
    let hwid = match kind {
        SigningKey::Vcek => {
            let name = "hwID";
            let raw = extension(cert, name, oid::HWID)?.ok_or(SnpError::ExtensionMissing {
                name,
                oid: oid::HWID,
            })?;
            // KDS writes the id raw; some encoders wrap it in a DER OCTET STRING.
            let id = if raw.len() == product.hwid_bytes() {
                raw.to_vec()
            } else {
                OctetString::from_der(raw)
                    .map(|o| o.as_bytes().to_vec())
                    .map_err(|_| SnpError::ExtensionMalformed { name })?
            };
            if id.len() != product.hwid_bytes() {
                return Err(SnpError::ExtensionMalformed { name });
            }
            Some(id)
        }
        SigningKey::Vlek | SigningKey::Other(_) => None,
    };
    Ok(VekClaims { tcb, hwid })
}

/// Checks a CA bundle a user supplied (`verify snp --ca PEM`: ASK or ASVK and ARK, as AMD's
/// KDS `cert_chain` serves them): every certificate in it must be byte-identical to a pinned
/// certificate of one product, which is returned. Trust never comes from the file; it only
/// selects (and must agree with) the pinned roots.
pub fn check_ca_bundle(pem: &[u8]) -> Result<Product, SnpError> {
    use x509_cert::der::Encode;
    let given = x509_cert::Certificate::load_pem_chain(pem)
        .map_err(|e| SnpError::CaBundle(format!("not pem certificates: {e}")))?;
    if given.is_empty() {
        return Err(SnpError::CaBundle("no certificate".into()));
    }
    let given: Vec<Vec<u8>> = given.iter().filter_map(|c| c.to_der().ok()).collect();
    for product in Product::ALL {
        let (ark, ask, asvk) = product.pinned_pem();
        let pinned: Vec<Vec<u8>> = [ark, ask, asvk]
            .iter()
            .filter_map(|p| x509_cert::Certificate::load_pem_chain(p).ok())
            .flatten()
            .filter_map(|c| c.to_der().ok())
            .collect();
        if given.iter().all(|g| pinned.contains(g)) {
            return Ok(product);
        }
    }
    Err(SnpError::CaBundle(
        "a certificate in it is not one of the pinned amd milan, genoa or turin cas".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_roots_verify() {
        for p in Product::ALL {
            assert!(pinned(p).is_ok(), "{p}");
        }
    }

    #[test]
    fn product_names_round_trip() {
        for p in Product::ALL {
            assert_eq!(p.as_str().parse::<Product>().unwrap(), p);
        }
        assert!("rome".parse::<Product>().is_err());
    }
}
