//! The enveloped XML signature of a RIM (W3C XML Signature 1.1 §3.2 core validation, restricted
//! to what NVIDIA's RIMs use): one `ds:Signature` child of the root, one `ds:Reference` with
//! `URI=""`, transforms enveloped-signature then C14N 1.1, SHA-384 digest, ECDSA P-384 with
//! SHA-384 over the canonical `ds:SignedInfo` (signature value r ‖ s, RFC 4051 §3.3), and the
//! signing chain in `ds:KeyInfo/ds:X509Data`. Anything else is refused, so nothing outside the
//! digested document can change what was signed.

use super::c14n;
use super::xml::{Document, Element};
use crate::error::RimError;
use base64::Engine as _;
use ring::signature::{UnparsedPublicKey, ECDSA_P384_SHA384_FIXED};
use sha2::{Digest as _, Sha384};

pub(crate) const DSIG_NS: &str = "http://www.w3.org/2000/09/xmldsig#";
const C14N_11: &str = "http://www.w3.org/2006/12/xml-c14n11";
const C14N_10: &str = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315";
const ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";
const ECDSA_SHA384: &str = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384";
const SHA384_MORE: &str = "http://www.w3.org/2001/04/xmldsig-more#sha384";
const SHA384_ENC: &str = "http://www.w3.org/2001/04/xmlenc#sha384";

/// The parts of a RIM signature, located and checked for shape (not yet verified).
#[derive(Debug, Clone)]
pub(crate) struct SignatureParts {
    /// Certificates of `ds:X509Data`, DER, in document order (signer first).
    pub certs: Vec<Vec<u8>>,
    digest_value: Vec<u8>,
    signature_value: Vec<u8>,
}

fn structure(element: &'static str) -> RimError {
    RimError::SignatureStructure { element }
}

fn b64(field: &'static str, text: &str) -> Result<Vec<u8>, RimError> {
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact)
        .map_err(|_| RimError::Base64 { field })
}

fn algorithm<'a>(el: &'a Element, what: &'static str) -> Result<&'a str, RimError> {
    if el.elements().next().is_some() {
        return Err(structure(what));
    }
    el.attr("Algorithm").ok_or(structure(what))
}

fn count_signatures(el: &Element) -> usize {
    el.elements()
        .map(|c| usize::from(c.is(DSIG_NS, "Signature")).saturating_add(count_signatures(c)))
        .fold(0usize, usize::saturating_add)
}

/// The `ds:Signature` child of the root; exactly one may exist anywhere in the document.
pub(crate) fn signature_element(doc: &Document) -> Result<&Element, RimError> {
    let count =
        usize::from(doc.root.is(DSIG_NS, "Signature")).saturating_add(count_signatures(&doc.root));
    if count != 1 {
        return Err(RimError::SignatureCount { count });
    }
    doc.root
        .child(DSIG_NS, "Signature")
        .ok_or(RimError::SignatureNotEnveloped)
}

fn check_signed_info(si: &Element) -> Result<Vec<u8>, RimError> {
    let kids: Vec<&Element> = si.elements().collect();
    let [cm, sm, reference] = kids.as_slice() else {
        return Err(structure("SignedInfo"));
    };
    if !cm.is(DSIG_NS, "CanonicalizationMethod")
        || !sm.is(DSIG_NS, "SignatureMethod")
        || !reference.is(DSIG_NS, "Reference")
    {
        return Err(structure("SignedInfo"));
    }
    let c = algorithm(cm, "CanonicalizationMethod")?;
    if c != C14N_11 && c != C14N_10 {
        return Err(RimError::UnsupportedAlgorithm {
            what: "canonicalization",
            uri: c.to_owned(),
        });
    }
    let s = algorithm(sm, "SignatureMethod")?;
    if s != ECDSA_SHA384 {
        return Err(RimError::UnsupportedAlgorithm {
            what: "signature method",
            uri: s.to_owned(),
        });
    }
    let uri = reference.attr("URI").unwrap_or("(absent)");
    if !uri.is_empty() {
        return Err(RimError::ReferenceUri {
            uri: uri.to_owned(),
        });
    }
    let rk: Vec<&Element> = reference.elements().collect();
    let [transforms, dm, dv] = rk.as_slice() else {
        return Err(structure("Reference"));
    };
    if !transforms.is(DSIG_NS, "Transforms")
        || !dm.is(DSIG_NS, "DigestMethod")
        || !dv.is(DSIG_NS, "DigestValue")
    {
        return Err(structure("Reference"));
    }
    let t: Vec<&str> = transforms
        .elements()
        .map(|t| {
            if t.is(DSIG_NS, "Transform") {
                algorithm(t, "Transform")
            } else {
                Err(structure("Transforms"))
            }
        })
        .collect::<Result<_, _>>()?;
    match t.as_slice() {
        [ENVELOPED] | [ENVELOPED, C14N_11] | [ENVELOPED, C14N_10] => {}
        _ => {
            return Err(RimError::UnsupportedAlgorithm {
                what: "transform chain",
                uri: t.join(" "),
            })
        }
    }
    let d = algorithm(dm, "DigestMethod")?;
    if d != SHA384_MORE && d != SHA384_ENC {
        return Err(RimError::UnsupportedAlgorithm {
            what: "digest method",
            uri: d.to_owned(),
        });
    }
    let digest = b64("DigestValue", &dv.text())?;
    if digest.len() != 48 {
        return Err(structure("DigestValue"));
    }
    Ok(digest)
}

/// Locates and shape-checks the signature.
pub(crate) fn parts(doc: &Document) -> Result<SignatureParts, RimError> {
    let sig = signature_element(doc)?;
    let kids: Vec<&Element> = sig.elements().collect();
    let (si, sv, ki) = match kids.as_slice() {
        [si, sv, ki] => (*si, *sv, *ki),
        _ => return Err(structure("Signature")),
    };
    if !si.is(DSIG_NS, "SignedInfo")
        || !sv.is(DSIG_NS, "SignatureValue")
        || !ki.is(DSIG_NS, "KeyInfo")
    {
        return Err(structure("Signature"));
    }
    let digest_value = check_signed_info(si)?;
    let signature_value = b64("SignatureValue", &sv.text())?;
    let x509 = ki
        .child(DSIG_NS, "X509Data")
        .ok_or(RimError::Missing { what: "X509Data" })?;
    let certs = x509
        .elements()
        .filter(|e| e.is(DSIG_NS, "X509Certificate"))
        .map(|e| b64("X509Certificate", &e.text()))
        .collect::<Result<Vec<_>, _>>()?;
    if certs.is_empty() {
        return Err(RimError::Missing {
            what: "X509Certificate",
        });
    }
    Ok(SignatureParts {
        certs,
        digest_value,
        signature_value,
    })
}

/// Checks the reference digest and the signature value under `signer`.
pub(crate) fn verify(
    doc: &Document,
    parts: &SignatureParts,
    signer: &[u8],
) -> Result<(), RimError> {
    let sig_el = signature_element(doc)?;
    let digest: [u8; 48] = Sha384::digest(c14n::document(doc, Some(sig_el))).into();
    if digest.as_slice() != parts.digest_value.as_slice() {
        return Err(RimError::DigestMismatch);
    }
    let si = sig_el
        .child(DSIG_NS, "SignedInfo")
        .ok_or(structure("Signature"))?;
    let signed_info = c14n::subtree(doc, &[sig_el, si])?;
    if parts.signature_value.len() != 96 {
        return Err(RimError::SignatureMalformed);
    }
    UnparsedPublicKey::new(&ECDSA_P384_SHA384_FIXED, signer)
        .verify(&signed_info, &parts.signature_value)
        .map_err(|_| RimError::BadSignature)
}
