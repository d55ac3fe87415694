//! Reference role: NVIDIA Reference Integrity Manifests (RIMs).
//!
//! A RIM is an ISO/IEC 19770-2 SWID tag (`SoftwareIdentity`) following the TCG RIM Information
//! Model: `Meta@colloquialVersion` names the driver or VBIOS version it describes, and
//! `Payload` lists `Resource type="Measurement"` entries: `index` (RIM index `i` describes GPU
//! measurement block `i + 1`), `active`, `alternatives` (how many acceptable values),
//! `size` and `Hash0..HashN-1` attributes in the `xmlenc#sha384` namespace. The document is
//! signed with an enveloped XML signature (module `dsig`) whose chain ends in the NVIDIA CoRIM
//! signing root ([`crate::chain::rim_root`]).
//!
//! [`UnverifiedRim::parse`] frames the XML and the measurement table; [`verify_rim`] checks the
//! signing chain, the document digest and the signature value, and yields a [`VerifiedRim`],
//! the only type whose measurements the appraisal reads.

mod c14n;
mod dsig;
mod xml;

use crate::chain::{self, LeafRole, TrustAnchor};
use crate::error::RimError;

/// Largest RIM accepted (NVIDIA's are about 20 KiB).
pub const MAX_RIM_LEN: usize = 1 << 20;
/// Most measurement entries accepted in one RIM (NVIDIA's have 64).
pub const MAX_MEASUREMENTS: usize = 256;
/// Most alternatives accepted for one index.
pub const MAX_ALTERNATIVES: u32 = 16;
/// Largest measurement size accepted, in bytes (SHA-384 = 48).
pub const MAX_MEASUREMENT_SIZE: u32 = 64;

/// SWID namespace (ISO/IEC 19770-2:2015 schema).
pub const SWID_NS: &str = "http://standards.iso.org/iso/19770/-2/2015/schema.xsd";
/// Namespace of the `HashN` attributes.
pub const HASH_NS: &str = "http://www.w3.org/2001/04/xmlenc#sha384";

/// One reference measurement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoldenMeasurement {
    /// RIM index (0-based; GPU block `index + 1`).
    pub index: u32,
    /// Whether the verifier must compare it.
    pub active: bool,
    /// Declared size in bytes.
    pub size: u32,
    /// Acceptable values, each `size` bytes.
    pub alternatives: Vec<Vec<u8>>,
    /// The `name` attribute.
    pub name: String,
}

/// A framed, unauthenticated RIM.
#[derive(Debug, Clone)]
pub struct UnverifiedRim {
    doc: xml::Document,
    colloquial_version: String,
    product: Option<String>,
    tag_id: Option<String>,
    measurements: Vec<GoldenMeasurement>,
}

/// A RIM whose signature and signing chain verified: its measurements may be used.
#[derive(Debug, Clone)]
pub struct VerifiedRim {
    colloquial_version: String,
    product: Option<String>,
    tag_id: Option<String>,
    measurements: Vec<GoldenMeasurement>,
    signer: String,
    chain: chain::VerifiedChain,
}

fn invalid(attr: &'static str, value: &str) -> RimError {
    RimError::InvalidAttribute {
        attr,
        value: value.to_owned(),
    }
}

fn number(attr: &'static str, value: Option<&str>) -> Result<u32, RimError> {
    let v = value.ok_or(RimError::Missing { what: attr })?;
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(attr, v));
    }
    v.parse().map_err(|_| invalid(attr, v))
}

fn measurements(payload: &xml::Element) -> Result<Vec<GoldenMeasurement>, RimError> {
    let resources: Vec<&xml::Element> = payload.elements().collect();
    if resources.len() > MAX_MEASUREMENTS {
        return Err(RimError::Limit {
            limit: "measurement count",
        });
    }
    // Pass 1: every index is a number and unique.
    let mut indices: Vec<u32> = Vec::with_capacity(resources.len());
    for r in &resources {
        if !r.is(SWID_NS, "Resource") || r.attr("type") != Some("Measurement") {
            return Err(RimError::Unsupported {
                feature: "payload entries other than Resource type=\"Measurement\"",
            });
        }
        let index = number("index", r.attr("index"))?;
        if indices.contains(&index) {
            return Err(RimError::DuplicateIndex { index });
        }
        indices.push(index);
    }
    // Pass 2: the rest of each entry.
    let mut out = Vec::with_capacity(resources.len());
    for (r, index) in resources.iter().zip(indices) {
        let alternatives = number("alternatives", r.attr("alternatives"))?;
        if alternatives == 0 || alternatives > MAX_ALTERNATIVES {
            return Err(invalid(
                "alternatives",
                r.attr("alternatives").unwrap_or(""),
            ));
        }
        let size = number("size", r.attr("size"))?;
        if size == 0 || size > MAX_MEASUREMENT_SIZE {
            return Err(invalid("size", r.attr("size").unwrap_or("")));
        }
        let active_text = r
            .attr("active")
            .ok_or(RimError::Missing { what: "active" })?;
        let active = if active_text.eq_ignore_ascii_case("true") {
            true
        } else if active_text.eq_ignore_ascii_case("false") {
            false
        } else {
            return Err(invalid("active", active_text));
        };
        let values = (0..alternatives)
            .map(|alternative| {
                let hex_text = r
                    .attr_ns(HASH_NS, &format!("Hash{alternative}"))
                    .ok_or(RimError::MissingHash { index, alternative })?;
                hex::decode(hex_text)
                    .ok()
                    .filter(|v| u32::try_from(v.len()).ok() == Some(size))
                    .ok_or(RimError::BadHash {
                        index,
                        alternative,
                        size,
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        out.push(GoldenMeasurement {
            index,
            active,
            size,
            alternatives: values,
            name: r.attr("name").unwrap_or_default().to_owned(),
        });
    }
    Ok(out)
}

impl UnverifiedRim {
    /// Frames a RIM: XML, SWID root, payload measurements, `Meta@colloquialVersion`.
    pub fn parse(bytes: &[u8]) -> Result<Self, RimError> {
        if bytes.len() > MAX_RIM_LEN {
            return Err(RimError::TooLarge {
                len: bytes.len(),
                max: MAX_RIM_LEN,
            });
        }
        let text = std::str::from_utf8(bytes).map_err(|_| RimError::NotUtf8)?;
        let doc = xml::parse(text)?;
        if !doc.root.is(SWID_NS, "SoftwareIdentity") {
            return Err(RimError::NotSwid {
                found: doc.root.qname(),
            });
        }
        let payload = doc
            .root
            .child(SWID_NS, "Payload")
            .ok_or(RimError::Missing { what: "Payload" })?;
        let measurements = measurements(payload)?;
        let meta = doc
            .root
            .child(SWID_NS, "Meta")
            .ok_or(RimError::Missing { what: "Meta" })?;
        let colloquial_version = meta
            .attr("colloquialVersion")
            .filter(|v| !v.is_empty())
            .ok_or(RimError::Missing {
                what: "Meta@colloquialVersion",
            })?
            .to_owned();
        Ok(Self {
            product: meta.attr("product").map(str::to_owned),
            tag_id: doc.root.attr("tagId").map(str::to_owned),
            doc,
            colloquial_version,
            measurements,
        })
    }

    /// The version this RIM describes (driver `550.90.07` or VBIOS `96.00.9F.00.01`).
    pub fn colloquial_version(&self) -> &str {
        &self.colloquial_version
    }

    /// The measurement table, unauthenticated.
    pub fn measurements(&self) -> &[GoldenMeasurement] {
        &self.measurements
    }
}

/// Verifies a RIM's signing chain to `anchor` at `now` (unix seconds), its document digest
/// and its signature value.
pub fn verify_rim_with_anchor(
    rim: &UnverifiedRim,
    anchor: &TrustAnchor,
    now: i64,
) -> Result<VerifiedRim, RimError> {
    let parts = dsig::parts(&rim.doc)?;
    let chain = chain::verify_chain(&parts.certs, anchor, LeafRole::RimSigning, now)
        .map_err(RimError::Chain)?;
    dsig::verify(&rim.doc, &parts, chain.leaf_public_key())?;
    Ok(VerifiedRim {
        colloquial_version: rim.colloquial_version.clone(),
        product: rim.product.clone(),
        tag_id: rim.tag_id.clone(),
        measurements: rim.measurements.clone(),
        signer: chain.leaf_subject().to_owned(),
        chain,
    })
}

/// Verifies a RIM against the pinned NVIDIA CoRIM signing root.
pub fn verify_rim(rim: &UnverifiedRim, now: i64) -> Result<VerifiedRim, RimError> {
    verify_rim_with_anchor(rim, chain::rim_root().map_err(RimError::Chain)?, now)
}

impl VerifiedRim {
    /// The version this RIM describes.
    pub fn colloquial_version(&self) -> &str {
        &self.colloquial_version
    }

    /// `Meta@product` (e.g. `GH100`).
    pub fn product(&self) -> Option<&str> {
        self.product.as_deref()
    }

    /// The SWID `tagId`.
    pub fn tag_id(&self) -> Option<&str> {
        self.tag_id.as_deref()
    }

    /// The authenticated measurement table.
    pub fn measurements(&self) -> &[GoldenMeasurement] {
        &self.measurements
    }

    /// Subject of the signing certificate.
    pub fn signer(&self) -> &str {
        &self.signer
    }

    /// Whether the signing chain is still inside its validity window at `now`.
    pub fn valid_at(&self, now: i64) -> bool {
        self.chain.valid_at(now)
    }
}
