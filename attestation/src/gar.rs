//! KEE-1 P7 / KEE-2 D3: the Governance Audit Record (GAR) format, shared by the kernel that
//! writes it and the auditor that checks it offline.
//!
//! * An **ALE** (audit log event) is the CBOR of [`Ale`]; ALEs are chained by
//!   `prev_span_hash` = SHA-256 of the previous ALE's bytes (genesis: 32 zero bytes).
//! * A **session block** ([`Block`]) holds ALEs of one session, in ascending `seq`. Its
//!   `block_id` is the session's OpenTelemetry trace id ([`trace_id`]); one session can span
//!   several blocks (one per anchor interval), told apart by the block's `height` (1, 2, …
//!   over the whole log). Its `root` is the RFC 9162 Merkle tree hash over the ALE bytes
//!   (leaf = SHA-256(0x00‖ALE), node = SHA-256(0x01‖left‖right)); `prev_root` is the root of
//!   block `height - 1` (32 zero bytes for the first block).
//! * One FROST (t-of-n) group signature per block over [`Block::signing_digest`]: plain
//!   Ed25519 under the group key, over the 32-byte digest.
//! * An **audit package** is a directory: `manifest.json`, `ales.cbor` (a CBOR array of byte
//!   strings, each one ALE's exact bytes), `blocks.cbor` (array of [`Block`]),
//!   `signatures.cbor` (array of [`BlockSignature`]) and `group_public_key.hex`.
//!   [`Package::parse`] reads it (outside input: typed errors, size limits, no panics) and
//!   [`verify_package`] checks it.

use serde::{Deserialize, Serialize};

/// Hash of "no previous event" and "no previous block".
pub const GENESIS_HASH: [u8; 32] = [0u8; 32];
/// Format name written into and required from `manifest.json`.
pub const PACKAGE_FORMAT: &str = "soos.gar.package.v1";
/// Domain separator of the block signing message.
pub const BLOCK_DOMAIN: &[u8] = b"soos.gar.block.v1\0";
/// Event kind of the watchdog's anchoring-gap event.
pub const ANCHOR_GAP_EVENT: &str = "soos.gar.anchor_gap_detected";
/// Largest package file accepted (256 MiB).
pub const MAX_FILE_BYTES: usize = 256 * 1024 * 1024;
/// Most ALEs in one block.
pub const MAX_BLOCK_ALES: usize = 1 << 16;

/// One audit event as stored and hashed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ale {
    /// Sequence number (1-based, gap-free).
    pub seq: u64,
    /// Session the event belongs to.
    pub session_id: String,
    /// When (Unix ms).
    pub at_ms: u64,
    /// Event type, e.g. `soos.governance.cedar.decision`.
    pub kind: String,
    /// Event details (CBOR of an event-specific struct).
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
    /// Hash of the previous ALE.
    #[serde(with = "serde_bytes")]
    pub prev_span_hash: Vec<u8>,
}

impl Ale {
    /// The ALE's canonical bytes (CBOR).
    pub fn to_bytes(&self) -> Vec<u8> {
        wire::encode(self).unwrap_or_default()
    }
    /// SHA-256 over the CBOR of the event (the span hash the next ALE points to).
    pub fn hash(&self) -> [u8; 32] {
        crate::sha256(&self.to_bytes())
    }
}

/// The OpenTelemetry trace id of a session: the first 16 bytes of
/// SHA-256("soos.otel.trace_id\0" ‖ session_id), so every kernel and auditor derives the same
/// id for the same session (an all-zero id, invalid in OTel, gets its last byte set to 1).
pub fn trace_id(session_id: &str) -> [u8; 16] {
    let mut m = b"soos.otel.trace_id\0".to_vec();
    m.extend_from_slice(session_id.as_bytes());
    let h = crate::sha256(&m);
    let mut id = [0u8; 16];
    for (d, s) in id.iter_mut().zip(h.iter()) {
        *d = *s;
    }
    if id == [0u8; 16] {
        id[15] = 1;
    }
    id
}

/// RFC 9162 leaf hash: SHA-256(0x00 ‖ leaf).
pub fn leaf_hash(leaf: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update([0u8]);
    h.update(leaf);
    h.finalize().into()
}

/// RFC 9162 interior node hash: SHA-256(0x01 ‖ left ‖ right).
pub fn node_hash(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// Largest power of two strictly below `n` (n ≥ 2).
fn split_point(n: usize) -> usize {
    let mut k = 1usize;
    while k.saturating_mul(2) < n {
        k = k.saturating_mul(2);
    }
    k
}

/// RFC 9162 Merkle tree hash over leaf hashes (SHA-256 of "" for no leaves).
pub fn merkle_root_of_leaves(leaves: &[[u8; 32]]) -> [u8; 32] {
    match leaves {
        [] => crate::sha256(b""),
        [one] => *one,
        _ => {
            let (l, r) = leaves.split_at(split_point(leaves.len()));
            node_hash(&merkle_root_of_leaves(l), &merkle_root_of_leaves(r))
        }
    }
}

/// RFC 9162 Merkle tree hash over the leaves' bytes.
pub fn merkle_root<T: AsRef<[u8]>>(leaves: &[T]) -> [u8; 32] {
    let hashes: Vec<[u8; 32]> = leaves.iter().map(|l| leaf_hash(l.as_ref())).collect();
    merkle_root_of_leaves(&hashes)
}

/// RFC 9162 §2.1.3.1 audit path of leaf `index` (None when out of range).
pub fn inclusion_path(leaves: &[[u8; 32]], index: usize) -> Option<Vec<[u8; 32]>> {
    if index >= leaves.len() {
        return None;
    }
    let mut path = Vec::new();
    fn walk(d: &[[u8; 32]], m: usize, out: &mut Vec<[u8; 32]>) {
        if d.len() <= 1 {
            return;
        }
        let (l, r) = d.split_at(split_point(d.len()));
        if m < l.len() {
            walk(l, m, out);
            out.push(merkle_root_of_leaves(r));
        } else {
            walk(r, m - l.len(), out);
            out.push(merkle_root_of_leaves(l));
        }
    }
    walk(leaves, index, &mut path);
    Some(path)
}

/// RFC 9162 §2.1.3.2: verifies an audit path for `leaf` at `index` in a tree of `size`.
pub fn verify_inclusion(
    leaf: &[u8; 32],
    index: u64,
    size: u64,
    path: &[[u8; 32]],
    root: &[u8; 32],
) -> bool {
    if index >= size {
        return false;
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf;
    for p in path {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    snode == 0 && r == *root
}

/// A closed session block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    /// Position in the log's block chain (1-based, gap-free).
    pub height: u64,
    /// The session's trace id ([`trace_id`]), 16 bytes.
    #[serde(with = "serde_bytes")]
    pub block_id: Vec<u8>,
    /// The session.
    pub session_id: String,
    /// Sequence numbers of its ALEs, ascending (the Merkle leaves, in order).
    pub seqs: Vec<u64>,
    /// RFC 9162 root over the ALEs' bytes.
    #[serde(with = "serde_bytes")]
    pub root: Vec<u8>,
    /// Root of the previous block (genesis: zeros).
    #[serde(with = "serde_bytes")]
    pub prev_root: Vec<u8>,
    /// Hash of the Cedar policy set in force when the block closed.
    #[serde(with = "serde_bytes")]
    pub cap_profile_hash: Vec<u8>,
    /// When it closed (Unix ms).
    pub closed_at_ms: u64,
}

impl Block {
    /// What the group signs: SHA-256(domain ‖ height ‖ block_id ‖ root ‖ count ‖ prev_root ‖
    /// cap_profile_hash), integers as 8-byte big-endian, the byte fields length-prefixed.
    pub fn signing_digest(&self) -> [u8; 32] {
        let mut m = BLOCK_DOMAIN.to_vec();
        m.extend_from_slice(&self.height.to_be_bytes());
        for part in [&self.block_id, &self.root] {
            m.extend_from_slice(&u64::try_from(part.len()).unwrap_or(u64::MAX).to_be_bytes());
            m.extend_from_slice(part);
        }
        m.extend_from_slice(
            &u64::try_from(self.seqs.len())
                .unwrap_or(u64::MAX)
                .to_be_bytes(),
        );
        for part in [&self.prev_root, &self.cap_profile_hash] {
            m.extend_from_slice(&u64::try_from(part.len()).unwrap_or(u64::MAX).to_be_bytes());
            m.extend_from_slice(part);
        }
        crate::sha256(&m)
    }
}

/// The group signature over one block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockSignature {
    /// Which block.
    pub height: u64,
    /// Ed25519 signature (64 bytes) over [`Block::signing_digest`].
    #[serde(with = "serde_bytes")]
    pub signature: Vec<u8>,
    /// Kernels whose shares made it.
    pub signers: Vec<String>,
    /// When (Unix ms).
    pub signed_at_ms: u64,
}

/// `manifest.json` of a package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageManifest {
    /// [`PACKAGE_FORMAT`].
    pub format: String,
    /// Kernel whose log this is.
    pub kernel_id: String,
    /// FROST group public key (hex).
    pub group_public_key: String,
    /// ALEs in `ales.cbor`.
    pub ales: u64,
    /// Blocks in `blocks.cbor`.
    pub blocks: u64,
    /// When exported (Unix ms).
    pub exported_at_ms: u64,
}

/// File names inside a package directory.
pub mod files {
    /// The manifest.
    pub const MANIFEST: &str = "manifest.json";
    /// The ALEs.
    pub const ALES: &str = "ales.cbor";
    /// The blocks.
    pub const BLOCKS: &str = "blocks.cbor";
    /// The signatures.
    pub const SIGNATURES: &str = "signatures.cbor";
    /// The group key, hex.
    pub const GROUP_KEY: &str = "group_public_key.hex";
}

/// Errors reading a package.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GarError {
    /// "package file `{0}` is larger than 256 MiB".
    #[error("package file `{0}` is larger than 256 MiB")]
    TooLarge(&'static str),
    /// "package file `{file}` does not decode: {detail}".
    #[error("package file `{file}` does not decode: {detail}")]
    Decode {
        /// Which file.
        file: &'static str,
        /// Why.
        detail: String,
    },
    /// "manifest format is `{0}`, expected soos.gar.package.v1".
    #[error("manifest format is `{0}`, expected soos.gar.package.v1")]
    Format(String),
    /// "group public key is not 32 bytes of hex".
    #[error("group public key is not 32 bytes of hex")]
    GroupKey,
}

/// A parsed (not yet verified) package.
#[derive(Debug, Clone)]
pub struct Package {
    /// The manifest.
    pub manifest: PackageManifest,
    /// Each ALE's exact bytes.
    pub ales: Vec<Vec<u8>>,
    /// The blocks.
    pub blocks: Vec<Block>,
    /// The signatures.
    pub signatures: Vec<BlockSignature>,
    /// The group key from `group_public_key.hex` (32 bytes).
    pub group_public_key: Vec<u8>,
}

fn dec<T: serde::de::DeserializeOwned>(file: &'static str, bytes: &[u8]) -> Result<T, GarError> {
    if bytes.len() > MAX_FILE_BYTES {
        return Err(GarError::TooLarge(file));
    }
    wire::decode(bytes).map_err(|e| GarError::Decode {
        file,
        detail: e.to_string(),
    })
}

impl Package {
    /// Parses the package files' contents.
    pub fn parse(
        manifest: &[u8],
        ales: &[u8],
        blocks: &[u8],
        signatures: &[u8],
        group_key_hex: &[u8],
    ) -> Result<Self, GarError> {
        if manifest.len() > MAX_FILE_BYTES {
            return Err(GarError::TooLarge(files::MANIFEST));
        }
        let m: PackageManifest =
            serde_json::from_slice(manifest).map_err(|e| GarError::Decode {
                file: files::MANIFEST,
                detail: e.to_string(),
            })?;
        if m.format != PACKAGE_FORMAT {
            return Err(GarError::Format(m.format));
        }
        let ales: Vec<serde_bytes::ByteBuf> = dec(files::ALES, ales)?;
        let blocks: Vec<Block> = dec(files::BLOCKS, blocks)?;
        let signatures: Vec<BlockSignature> = dec(files::SIGNATURES, signatures)?;
        let key = std::str::from_utf8(group_key_hex)
            .ok()
            .and_then(|s| hex::decode(s.trim()).ok())
            .filter(|k| k.len() == 32)
            .ok_or(GarError::GroupKey)?;
        Ok(Self {
            manifest: m,
            ales: ales.into_iter().map(|b| b.into_vec()).collect(),
            blocks,
            signatures,
            group_public_key: key,
        })
    }

    /// The files' contents, in [`Package::parse`]'s order (manifest JSON, ALEs, blocks,
    /// signatures, group key hex).
    pub fn to_files(&self) -> Result<[Vec<u8>; 5], GarError> {
        let enc = |file: &'static str, r: Result<Vec<u8>, wire::CodecError>| {
            r.map_err(|e| GarError::Decode {
                file,
                detail: e.to_string(),
            })
        };
        let ales: Vec<&serde_bytes::Bytes> = self
            .ales
            .iter()
            .map(|a| serde_bytes::Bytes::new(a))
            .collect();
        Ok([
            serde_json::to_vec_pretty(&self.manifest).map_err(|e| GarError::Decode {
                file: files::MANIFEST,
                detail: e.to_string(),
            })?,
            enc(files::ALES, wire::encode(&ales))?,
            enc(files::BLOCKS, wire::encode(&self.blocks))?,
            enc(files::SIGNATURES, wire::encode(&self.signatures))?,
            format!("{}\n", hex::encode(&self.group_public_key)).into_bytes(),
        ])
    }
}

/// One named check and its outcome.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Check {
    /// Check name.
    pub check: String,
    /// Passed?
    pub ok: bool,
    /// Detail or failure reason.
    pub detail: String,
}

/// An ALE's inclusion proof in its block.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct InclusionProof {
    /// The ALE.
    pub seq: u64,
    /// Its block.
    pub height: u64,
    /// The block's trace id (hex).
    pub block_id: String,
    /// Leaf index in the block.
    pub leaf_index: u64,
    /// Leaves in the block.
    pub tree_size: u64,
    /// Leaf hash (hex).
    pub leaf_hash: String,
    /// RFC 9162 audit path (hex hashes, bottom up).
    pub audit_path: Vec<String>,
    /// Block root (hex).
    pub root: String,
}

/// The report of a package verification.
#[derive(Debug, Clone, Serialize)]
pub struct PackageReport {
    /// Kernel id from the manifest.
    pub kernel_id: String,
    /// ALEs checked.
    pub ales: u64,
    /// Blocks checked.
    pub blocks: u64,
    /// Every check in order.
    pub checks: Vec<Check>,
    /// The requested ALE's proof, when it was built and verified.
    pub inclusion: Option<InclusionProof>,
    /// True when every check passed.
    pub verified: bool,
}

fn push(checks: &mut Vec<Check>, name: &str, r: Result<String, String>) {
    let ok = r.is_ok();
    checks.push(Check {
        check: name.into(),
        ok,
        detail: r.unwrap_or_else(|e| e),
    });
}

/// Verifies a group (plain Ed25519) signature over `msg`.
pub fn verify_ed25519(public_key: &[u8], msg: &[u8], signature: &[u8]) -> bool {
    ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, public_key)
        .verify(msg, signature)
        .is_ok()
}

fn check_ales(ales: &[Vec<u8>]) -> Result<String, String> {
    let mut prev = GENESIS_HASH;
    for (i, bytes) in ales.iter().enumerate() {
        let want = u64::try_from(i).unwrap_or(u64::MAX).saturating_add(1);
        let ale: Ale =
            wire::decode(bytes).map_err(|e| format!("ALE #{want} does not decode: {e}"))?;
        if ale.to_bytes() != *bytes {
            return Err(format!("ALE {} is not in canonical CBOR", ale.seq));
        }
        if ale.seq != want {
            return Err(format!(
                "sequence gap: ALE {want} expected, ALE {} found",
                ale.seq
            ));
        }
        if ale.prev_span_hash != prev {
            return Err(format!(
                "ALE {} does not point to the hash of ALE {}",
                ale.seq,
                want - 1
            ));
        }
        prev = crate::sha256(bytes);
    }
    Ok(format!(
        "{} ALEs chained by prev_span_hash from genesis",
        ales.len()
    ))
}

/// Verifies a package; with `ale`, also builds and checks that ALE's inclusion proof.
/// `pinned_group_key` replaces the package's own key (an auditor's out-of-band copy).
pub fn verify_package(
    p: &Package,
    ale: Option<u64>,
    pinned_group_key: Option<&[u8]>,
) -> PackageReport {
    let mut checks = Vec::new();
    let group_key = pinned_group_key.unwrap_or(&p.group_public_key);
    let manifest_hex_ok = hex::decode(&p.manifest.group_public_key).ok().as_deref()
        == Some(p.group_public_key.as_slice());
    push(
        &mut checks,
        "package.manifest",
        if !manifest_hex_ok {
            Err("manifest names another group key than group_public_key.hex".into())
        } else if p.manifest.ales != p.ales.len() as u64
            || p.manifest.blocks != p.blocks.len() as u64
        {
            Err(format!(
                "manifest counts {} ALEs and {} blocks; the package holds {} and {}",
                p.manifest.ales,
                p.manifest.blocks,
                p.ales.len(),
                p.blocks.len()
            ))
        } else if pinned_group_key.is_some_and(|k| k != p.group_public_key.as_slice()) {
            Err("the package's group key is not the pinned one".into())
        } else {
            Ok(format!("kernel `{}`", p.manifest.kernel_id))
        },
    );
    push(&mut checks, "ales.chain", check_ales(&p.ales));

    // Coverage: every ALE in exactly one block.
    let n = p.ales.len();
    let mut owner: Vec<Option<usize>> = vec![None; n];
    let coverage = (|| {
        for (bi, b) in p.blocks.iter().enumerate() {
            if b.seqs.is_empty() || b.seqs.len() > MAX_BLOCK_ALES {
                return Err(format!("block {} holds {} ALEs", b.height, b.seqs.len()));
            }
            if b.seqs.windows(2).any(|w| w.first() >= w.get(1)) {
                return Err(format!("block {} lists its ALEs out of order", b.height));
            }
            for s in &b.seqs {
                let slot = usize::try_from(*s)
                    .ok()
                    .and_then(|s| s.checked_sub(1))
                    .and_then(|i| owner.get_mut(i))
                    .ok_or_else(|| {
                        format!("block {} names ALE {s}, not in the package", b.height)
                    })?;
                if slot.is_some() {
                    return Err(format!("ALE {s} is in two blocks"));
                }
                *slot = Some(bi);
            }
        }
        match owner.iter().position(Option::is_none) {
            Some(i) => Err(format!("ALE {} is in no block (not anchored)", i + 1)),
            None => Ok(format!("{n} ALEs in {} blocks", p.blocks.len())),
        }
    })();
    push(&mut checks, "blocks.coverage", coverage);

    // Roots, trace ids and the chain of previous roots.
    let mut root_fail = None;
    let mut chain_fail = None;
    let mut prev = GENESIS_HASH.to_vec();
    for (i, b) in p.blocks.iter().enumerate() {
        let height = u64::try_from(i).unwrap_or(u64::MAX).saturating_add(1);
        if chain_fail.is_none() {
            if b.height != height {
                chain_fail = Some(format!("block {height} expected, block {} found", b.height));
            } else if b.prev_root != prev {
                chain_fail = Some(format!(
                    "block {} does not name block {}'s root as its previous root",
                    b.height,
                    height - 1
                ));
            }
        }
        prev = b.root.clone();
        if root_fail.is_none() {
            let leaves: Option<Vec<&Vec<u8>>> = b
                .seqs
                .iter()
                .map(|s| {
                    usize::try_from(*s)
                        .ok()
                        .and_then(|s| s.checked_sub(1))
                        .and_then(|i| p.ales.get(i))
                })
                .collect();
            match leaves {
                None => {
                    root_fail = Some(format!("block {} names ALEs not in the package", b.height))
                }
                Some(l) => {
                    if merkle_root(&l).as_slice() != b.root.as_slice() {
                        root_fail = Some(format!(
                            "block {}: the Merkle root over its {} ALEs differs from the stored root",
                            b.height,
                            l.len()
                        ));
                    } else if b.block_id.as_slice() != trace_id(&b.session_id) {
                        root_fail = Some(format!(
                            "block {}: block_id is not its session's trace id",
                            b.height
                        ));
                    } else if let Some(other) = l.iter().find_map(|bytes| {
                        wire::decode::<Ale>(bytes)
                            .ok()
                            .filter(|a| a.session_id != b.session_id)
                    }) {
                        root_fail = Some(format!(
                            "block {}: ALE {} belongs to another session",
                            b.height, other.seq
                        ));
                    }
                }
            }
        }
    }
    push(
        &mut checks,
        "blocks.merkle_root",
        root_fail.map_or_else(
            || Ok(format!("{} RFC 9162 roots recomputed", p.blocks.len())),
            Err,
        ),
    );
    push(
        &mut checks,
        "blocks.chain",
        chain_fail.map_or_else(
            || Ok("every block names its predecessor's root".into()),
            Err,
        ),
    );

    // Signatures: exactly one per block, each verifying under the group key.
    let sigs = (|| {
        if p.signatures.len() != p.blocks.len() {
            return Err(format!(
                "{} signatures for {} blocks (unsigned blocks are pending, not anchored)",
                p.signatures.len(),
                p.blocks.len()
            ));
        }
        for (b, s) in p.blocks.iter().zip(&p.signatures) {
            if s.height != b.height {
                return Err(format!(
                    "signature for block {} found where block {} is",
                    s.height, b.height
                ));
            }
            if !verify_ed25519(group_key, &b.signing_digest(), &s.signature) {
                return Err(format!(
                    "block {}: the group signature does not verify",
                    b.height
                ));
            }
        }
        Ok(format!(
            "{} FROST group signatures verify (Ed25519) under {}",
            p.blocks.len(),
            hex::encode(group_key)
        ))
    })();
    push(&mut checks, "blocks.signature", sigs);

    let mut inclusion = None;
    if let Some(seq) = ale {
        let r = (|| {
            let idx = usize::try_from(seq)
                .ok()
                .and_then(|s| s.checked_sub(1))
                .ok_or_else(|| format!("no ALE {seq}"))?;
            let bytes = p
                .ales
                .get(idx)
                .ok_or_else(|| format!("no ALE {seq} in the package"))?;
            let bi = owner
                .get(idx)
                .copied()
                .flatten()
                .ok_or_else(|| format!("ALE {seq} is in no block"))?;
            let b = p
                .blocks
                .get(bi)
                .ok_or_else(|| format!("ALE {seq} is in no block"))?;
            let pos = b
                .seqs
                .iter()
                .position(|s| *s == seq)
                .ok_or_else(|| format!("ALE {seq} is in no block"))?;
            let leaves: Vec<[u8; 32]> = b
                .seqs
                .iter()
                .filter_map(|s| {
                    usize::try_from(*s)
                        .ok()
                        .and_then(|s| s.checked_sub(1))
                        .and_then(|i| p.ales.get(i))
                })
                .map(|a| leaf_hash(a))
                .collect();
            let path = inclusion_path(&leaves, pos).ok_or("leaf out of range")?;
            let root: [u8; 32] = b
                .root
                .as_slice()
                .try_into()
                .map_err(|_| format!("block {} root is not 32 bytes", b.height))?;
            let leaf = leaf_hash(bytes);
            let size = leaves.len() as u64;
            if !verify_inclusion(&leaf, pos as u64, size, &path, &root) {
                return Err(format!(
                    "ALE {seq}'s audit path does not reach block {}'s root",
                    b.height
                ));
            }
            let proof = InclusionProof {
                seq,
                height: b.height,
                block_id: hex::encode(&b.block_id),
                leaf_index: pos as u64,
                tree_size: size,
                leaf_hash: hex::encode(leaf),
                audit_path: path.iter().map(hex::encode).collect(),
                root: hex::encode(root),
            };
            let detail = format!(
                "ALE {seq} is leaf {pos} of {size} in block {} ({} path hashes)",
                b.height,
                proof.audit_path.len()
            );
            inclusion = Some(proof);
            Ok(detail)
        })();
        push(&mut checks, "ale.inclusion", r);
    }
    let verified = checks.iter().all(|c| c.ok);
    PackageReport {
        kernel_id: p.manifest.kernel_id.clone(),
        ales: n as u64,
        blocks: p.blocks.len() as u64,
        checks,
        inclusion,
        verified,
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation,
    reason = "tests"
)]
mod tests {
    use super::*;

    #[test]
    fn rfc9162_roots_and_every_inclusion_path() {
        // Empty tree and single leaf per RFC 9162 §2.1.1.
        assert_eq!(merkle_root::<&[u8]>(&[]), crate::sha256(b""));
        assert_eq!(merkle_root(&[b"a"]), leaf_hash(b"a"));
        let three = merkle_root(&[b"a", b"b", b"c"]);
        let ab = node_hash(&leaf_hash(b"a"), &leaf_hash(b"b"));
        assert_eq!(three, node_hash(&ab, &leaf_hash(b"c")));
        for n in 1..40usize {
            let leaves: Vec<[u8; 32]> = (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect();
            let root = merkle_root_of_leaves(&leaves);
            for m in 0..n {
                let path = inclusion_path(&leaves, m).unwrap();
                assert!(verify_inclusion(
                    &leaves[m], m as u64, n as u64, &path, &root
                ));
                // Wrong index, wrong leaf and a truncated path fail.
                if n > 1 {
                    assert!(!verify_inclusion(
                        &leaves[m],
                        ((m + 1) % n) as u64,
                        n as u64,
                        &path,
                        &root
                    ));
                    assert!(!verify_inclusion(
                        &leaves[(m + 1) % n],
                        m as u64,
                        n as u64,
                        &path,
                        &root
                    ));
                    assert!(!verify_inclusion(
                        &leaves[m],
                        m as u64,
                        n as u64,
                        &path[1..],
                        &root
                    ));
                }
            }
            assert!(inclusion_path(&leaves, n).is_none());
        }
    }

    #[test]
    fn trace_ids_are_deterministic_and_distinct() {
        assert_eq!(trace_id("s1"), trace_id("s1"));
        assert_ne!(trace_id("s1"), trace_id("s2"));
    }

    #[test]
    fn garbage_never_panics() {
        for junk in [&b""[..], b"\xff", b"\x9f\x9f\x9f", b"{}", b"\x84\x01\x02"] {
            let _ = Package::parse(junk, junk, junk, junk, junk);
        }
    }
}
