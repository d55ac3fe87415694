//! Offline appraisal of one piece of evidence from files, as `verify snp|tdx|tpm|bundle` runs
//! it: decode the inputs (binary, PEM, hex or JSON as the vendors and tools ship them), verify
//! with the `attestation` crate, appraise against reference values, and return an EAR-shaped
//! [`Verdict`]. Verification failures are verdicts (exit code 1), never errors; only inputs
//! that cannot be read or decoded at all are errors (exit code 2).

use anyhow::{anyhow, bail, Context};
use attestation::reference::ReferenceValues;
use attestation::result::{claim, Tier};
use attestation::snp::endorser::{check_ca_bundle, Product};
use attestation::tdx::{Collateral, TdxVerifier};
use attestation::tpm::{AkPublic, PcrValue, TpmEvidence};
use attestation::verdict::{appraise_snp, appraise_tdx, appraise_tpm_pcrs, Verdict};
use attestation::EvidenceKind;
use base64::Engine as _;
use std::collections::BTreeMap;

/// DER from PEM (first certificate) or DER as given.
pub fn der_or_pem(bytes: &[u8]) -> anyhow::Result<Vec<u8>> {
    let text = std::str::from_utf8(bytes).ok();
    match text {
        Some(t) if t.contains("-----BEGIN") => {
            let b64: String = t
                .lines()
                .skip_while(|l| !l.starts_with("-----BEGIN"))
                .skip(1)
                .take_while(|l| !l.starts_with("-----END"))
                .collect();
            base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .context("pem body is not base64")
        }
        _ => Ok(bytes.to_vec()),
    }
}

/// Hex text (whitespace and a `0x` prefix allowed) to bytes.
pub fn hex_arg(s: &str) -> anyhow::Result<Vec<u8>> {
    let t: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    hex::decode(t.strip_prefix("0x").unwrap_or(&t)).context("not hex")
}

/// `verify snp`.
pub fn snp(
    report: &[u8],
    vek: &[u8],
    ca: Option<&[u8]>,
    product: Option<Product>,
    reference: &ReferenceValues,
    nonce: Option<&[u8]>,
) -> anyhow::Result<Verdict> {
    let vek = der_or_pem(vek)?;
    let mut product = product;
    if let Some(ca) = ca {
        match check_ca_bundle(ca) {
            Ok(p) if product.is_some_and(|q| q != p) => {
                return Ok(Verdict::failed(
                    "sev-snp",
                    "vek-chain",
                    claim::HARDWARE,
                    format!("--ca is the {p} chain but --product names another"),
                ))
            }
            Ok(p) => product = Some(p),
            Err(e) => {
                return Ok(Verdict::failed(
                    "sev-snp",
                    e.check(),
                    claim::HARDWARE,
                    e.to_string(),
                ))
            }
        }
    }
    Ok(match attestation::snp::verify_snp(report, &vek, product) {
        Ok(r) => appraise_snp(&r, &reference.snp.clone().unwrap_or_default(), nonce),
        Err(e) => Verdict::failed("sev-snp", e.check(), claim::HARDWARE, e.to_string()),
    })
}

/// `verify tdx`. Without collateral, chain and signatures only (TCB not evaluated: warning).
pub fn tdx(
    verifier: &TdxVerifier,
    quote: &[u8],
    collateral: Option<&Collateral>,
    now_unix_s: u64,
    reference: &ReferenceValues,
    nonce: Option<&[u8]>,
) -> Verdict {
    let verified = match collateral {
        Some(c) => verifier.verify(quote, c, now_unix_s),
        None => attestation::tdx::verify_tdx_signatures(quote, now_unix_s),
    };
    match verified {
        Ok(q) => appraise_tdx(&q, &reference.tdx.clone().unwrap_or_default(), nonce),
        Err(e) => Verdict::failed("tdx", e.check(), claim::HARDWARE, e.to_string()),
    }
}

/// A TPM quote in one of the accepted encodings.
#[derive(Debug, Clone)]
pub struct TpmInput {
    /// TPMS_ATTEST bytes.
    pub attest: Vec<u8>,
    /// TPMT_SIGNATURE bytes.
    pub signature: Vec<u8>,
    /// The AK.
    pub ak: AkPublic,
    /// PCR values the quote must cover.
    pub pcrs: Vec<PcrValue>,
}

/// Reads `--evidence FILE`: this project's CBOR `TpmEvidence`, or the JSON shape of
/// trustee's `tpm_evidence.json` (`ak_public` base64 SPKI, `tpm_quote.{message, signature,
/// pcrs}`).
pub fn tpm_evidence_file(bytes: &[u8]) -> anyhow::Result<TpmInput> {
    if let Ok(ev) = TpmEvidence::from_item_data(bytes) {
        return Ok(TpmInput {
            ak: AkPublic::from_tpmt_public(&ev.ak_public)
                .map_err(|e| anyhow!("ak public area: {e}"))?,
            attest: ev.attest,
            signature: ev.signature,
            pcrs: ev.pcrs,
        });
    }
    let json: serde_json::Value =
        serde_json::from_slice(bytes).context("evidence is neither TpmEvidence CBOR nor JSON")?;
    let b64 = |v: Option<&serde_json::Value>, what: &str| -> anyhow::Result<Vec<u8>> {
        let s = v
            .and_then(|v| v.as_str())
            .ok_or_else(|| anyhow!("evidence JSON has no `{what}`"))?;
        base64::engine::general_purpose::STANDARD
            .decode(s)
            .with_context(|| format!("`{what}` is not base64"))
    };
    let quote = json
        .get("tpm_quote")
        .ok_or_else(|| anyhow!("evidence JSON has no `tpm_quote`"))?;
    let pcrs = quote
        .get("pcrs")
        .and_then(|p| p.as_array())
        .ok_or_else(|| anyhow!("evidence JSON has no `tpm_quote.pcrs`"))?
        .iter()
        .enumerate()
        .map(|(i, p)| {
            Ok(PcrValue {
                index: u8::try_from(i).context("too many pcrs")?,
                digest: hex_arg(p.as_str().unwrap_or_default())?,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let ak = AkPublic::from_rsa_spki_der(&b64(json.get("ak_public"), "ak_public")?)
        .map_err(|e| anyhow!("ak_public: {e}"))?;
    Ok(TpmInput {
        attest: b64(quote.get("message"), "tpm_quote.message")?,
        signature: tpm_signature(&b64(quote.get("signature"), "tpm_quote.signature")?, &ak),
        ak,
        pcrs,
    })
}

/// A marshalled TPMT_SIGNATURE as given, or a bare RSA signature (as Azure's vTPM tooling
/// stores it) wrapped as RSASSA-PKCS1v1.5-SHA256 when the key is RSA and the length fits.
pub fn tpm_signature(sig: &[u8], ak: &AkPublic) -> Vec<u8> {
    if attestation::tpm::TpmSignature::parse(sig).is_ok() {
        return sig.to_vec();
    }
    let modulus = ak.rsa_modulus_bytes();
    if modulus != 0 && sig.len() == modulus {
        let mut out = Vec::with_capacity(sig.len().saturating_add(6));
        out.extend_from_slice(&0x0014u16.to_be_bytes()); // TPM_ALG_RSASSA
        out.extend_from_slice(&0x000Bu16.to_be_bytes()); // TPM_ALG_SHA256
        out.extend_from_slice(&u16::try_from(sig.len()).unwrap_or(0).to_be_bytes());
        out.extend_from_slice(sig);
        return out;
    }
    sig.to_vec()
}

/// An AK as TPMT_PUBLIC (binary) or RSA SPKI (PEM or DER).
pub fn ak_file(bytes: &[u8]) -> anyhow::Result<AkPublic> {
    if let Ok(ak) = AkPublic::from_tpmt_public(bytes) {
        return Ok(ak);
    }
    let der = der_or_pem(bytes)?;
    AkPublic::from_rsa_spki_der(&der)
        .map_err(|e| anyhow!("ak is neither a TPMT_PUBLIC nor an RSA SPKI: {e}"))
}

/// PCR values from text: lines `N: HEX` / `N=HEX`, or JSON `{"N": "HEX"}` / `["HEX", …]`.
pub fn pcrs_file(bytes: &[u8]) -> anyhow::Result<Vec<PcrValue>> {
    let text = std::str::from_utf8(bytes).context("pcr file is not text")?;
    if let Ok(json) = serde_json::from_str::<serde_json::Value>(text) {
        let mut out = Vec::new();
        match json {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    out.push(PcrValue {
                        index: k.trim_start_matches("pcr").parse().context("pcr index")?,
                        digest: hex_arg(v.as_str().unwrap_or_default())?,
                    });
                }
            }
            serde_json::Value::Array(list) => {
                for (i, v) in list.iter().enumerate() {
                    out.push(PcrValue {
                        index: u8::try_from(i).context("too many pcrs")?,
                        digest: hex_arg(v.as_str().unwrap_or_default())?,
                    });
                }
            }
            _ => bail!("pcr JSON is neither an object nor an array"),
        }
        return Ok(out);
    }
    let mut out = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (idx, val) = line
            .split_once(':')
            .or_else(|| line.split_once('='))
            .ok_or_else(|| anyhow!("pcr line `{line}` is not `N: HEX`"))?;
        out.push(PcrValue {
            index: idx
                .trim()
                .trim_start_matches("pcr")
                .parse()
                .context("pcr index")?,
            digest: hex_arg(val)?,
        });
    }
    Ok(out)
}

/// `verify tpm`: signature under the AK, magic/type, qualifying data (= `--nonce` when
/// given), PCR digest over the supplied values, PCRs against reference values.
pub fn tpm(input: &TpmInput, reference: &ReferenceValues, nonce: Option<&[u8]>) -> Verdict {
    tpm_with_log(input, reference, nonce, None)
}

/// `verify tpm --eventlog FILE`: as [`tpm`], and the TCG2 event log (binary_bios_measurements
/// format) must replay, in the SHA-256 bank, to every quoted PCR it extends; a mismatch names
/// the PCR and the event after which the log and the quote part ways.
pub fn tpm_with_log(
    input: &TpmInput,
    reference: &ReferenceValues,
    nonce: Option<&[u8]>,
    event_log: Option<&[u8]>,
) -> Verdict {
    let mut v = Verdict::new("tpm");
    // Without --nonce the quote's own extraData is accepted (and reported as unchecked).
    let quoted_extra = attestation::tpm::UnverifiedQuote::parse(&input.attest)
        .map(|q| q.extra_data().to_vec())
        .unwrap_or_default();
    let expected = nonce.map(<[u8]>::to_vec).unwrap_or(quoted_extra.clone());
    match attestation::tpm::verify_quote_with_key(
        &input.attest,
        &input.signature,
        &input.ak,
        &input.pcrs,
        &expected,
    ) {
        Ok(q) => {
            v.push(
                "quote-signature",
                claim::INSTANCE_IDENTITY,
                Tier::Affirming,
                "TPMS_ATTEST (magic, quote type) signed by the attestation key; PCR digest equals the digest of the supplied values",
            );
            match nonce {
                Some(_) => v.push(
                    "qualifying-data",
                    claim::INSTANCE_IDENTITY,
                    Tier::Affirming,
                    "extraData equals the expected nonce",
                ),
                None => v.push(
                    "qualifying-data",
                    claim::INSTANCE_IDENTITY,
                    Tier::None,
                    format!(
                        "no expected nonce given: freshness not checked (extraData {})",
                        hex::encode(&quoted_extra)
                    ),
                ),
            }
            appraise_tpm_pcrs(&mut v, q.pcrs(), reference.tpm.as_ref());
            if let Some(log) = event_log {
                eventlog_check(&mut v, log, q.pcrs());
            }
            v.measure("ak_public_sha256", hex::encode(q.ak_public_digest()));
            v.finish()
        }
        Err(e) => Verdict::failed("tpm", "quote", claim::INSTANCE_IDENTITY, e.to_string()),
    }
}

fn eventlog_check(v: &mut Verdict, log: &[u8], quoted: &BTreeMap<u8, [u8; 32]>) {
    use attestation::eventlog::{check_against, replay, DigestAlgorithm, EventLog};
    let parsed = match EventLog::parse(log) {
        Ok(l) => l,
        Err(e) => {
            v.push(
                "eventlog",
                claim::EXECUTABLES,
                Tier::Contraindicated,
                format!("event log rejected: {e}"),
            );
            return;
        }
    };
    let extended = match replay(&parsed, DigestAlgorithm::Sha256) {
        Ok(r) => r,
        Err(e) => {
            v.push(
                "eventlog",
                claim::EXECUTABLES,
                Tier::Contraindicated,
                format!("event log cannot be replayed in sha-256: {e}"),
            );
            return;
        }
    };
    let expected: BTreeMap<u32, Vec<u8>> = quoted
        .iter()
        .map(|(i, d)| (u32::from(*i), d.to_vec()))
        .filter(|(i, _)| extended.contains_key(i))
        .collect();
    if expected.is_empty() {
        v.push(
            "eventlog",
            claim::EXECUTABLES,
            Tier::Contraindicated,
            "the event log extends none of the quoted PCRs",
        );
        return;
    }
    match check_against(&parsed, DigestAlgorithm::Sha256, &expected) {
        Ok(()) => v.push(
            "eventlog",
            claim::EXECUTABLES,
            Tier::Affirming,
            format!(
                "{} events replay to the quoted PCRs {:?}",
                parsed.events().len(),
                expected.keys().collect::<Vec<_>>()
            ),
        ),
        Err(e) => v.push(
            "eventlog",
            claim::EXECUTABLES,
            Tier::Contraindicated,
            e.to_string(),
        ),
    }
}

/// `verify bundle`: the project's own COSE_Sign1 evidence bundle. The signature must verify
/// under the attestation key it names; every item must verify and carry the bundle's binding
/// value; `--nonce` (the verifier nonce, 32 bytes) is compared with the bundle's when given.
pub fn bundle(
    bytes: &[u8],
    reference: &ReferenceValues,
    nonce: Option<&[u8]>,
    tdx_collateral: Option<&Collateral>,
    now_unix_s: u64,
) -> Verdict {
    let parsed = match attestation::bundle::UnverifiedBundle::parse(bytes)
        .and_then(attestation::bundle::UnverifiedBundle::verify_signature)
    {
        Ok(b) => b,
        Err(e) => {
            return Verdict::failed(
                "bundle",
                "bundle-signature",
                claim::INSTANCE_IDENTITY,
                e.to_string(),
            )
        }
    };
    let mut v = Verdict::new("bundle");
    v.push(
        "bundle-signature",
        claim::INSTANCE_IDENTITY,
        Tier::Affirming,
        "COSE_Sign1 signature verifies under the bundle's attestation key",
    );
    match nonce {
        None => v.push(
            "nonce",
            claim::INSTANCE_IDENTITY,
            Tier::None,
            "no expected nonce given: freshness not checked",
        ),
        Some(n) if n == parsed.nonce().as_bytes() => v.push(
            "nonce",
            claim::INSTANCE_IDENTITY,
            Tier::Affirming,
            "bundle nonce equals the expected nonce",
        ),
        Some(n) => v.push(
            "nonce",
            claim::INSTANCE_IDENTITY,
            Tier::Contraindicated,
            format!(
                "bundle nonce {} is not the expected {}",
                hex::encode(parsed.nonce().as_bytes()),
                hex::encode(n)
            ),
        ),
    }
    let binding = parsed.binding().as_bytes().to_vec();
    v.measure("kernel_id", parsed.kernel_id());
    v.measure("level", parsed.level().as_str());
    v.measure("binding_value", hex::encode(&binding));
    let mut platform = 0usize;
    for (i, item) in parsed.items().iter().enumerate() {
        let prefix = format!("item{i}.{}", item.kind.as_str());
        match item.kind {
            EvidenceKind::Software => {
                platform = platform.saturating_add(1);
                match attestation::software::verify(&item.data) {
                    Ok(r) if r.report_data() == parsed.binding().as_bytes() => v.push(
                        &prefix,
                        claim::HARDWARE,
                        Tier::Affirming,
                        format!(
                            "software platform report ({}) signed and bound to the bundle",
                            r.level()
                        ),
                    ),
                    Ok(_) => v.push(
                        &prefix,
                        claim::INSTANCE_IDENTITY,
                        Tier::Contraindicated,
                        "software report is bound to another key, nonce or manifest",
                    ),
                    Err(e) => v.push(
                        &prefix,
                        claim::HARDWARE,
                        Tier::Contraindicated,
                        e.to_string(),
                    ),
                }
            }
            EvidenceKind::Tpm => {
                let input = TpmEvidence::from_item_data(&item.data)
                    .map_err(|e| e.to_string())
                    .and_then(|ev| {
                        Ok(TpmInput {
                            ak: AkPublic::from_tpmt_public(&ev.ak_public)
                                .map_err(|e| e.to_string())?,
                            attest: ev.attest,
                            signature: ev.signature,
                            pcrs: ev.pcrs,
                        })
                    });
                match input {
                    Ok(input) => v.absorb(
                        &prefix,
                        tpm(
                            &input,
                            reference,
                            Some(parsed.binding().tpm_qualifying_data()),
                        ),
                    ),
                    Err(e) => v.push(&prefix, claim::INSTANCE_IDENTITY, Tier::Contraindicated, e),
                }
            }
            EvidenceKind::SevSnp => {
                platform = platform.saturating_add(1);
                let ev: Result<attestation::snp::SnpEvidence, _> =
                    ciborium::from_reader(item.data.as_slice());
                match ev {
                    Ok(ev) => {
                        let vek = ev
                            .certs
                            .iter()
                            .find(|c| {
                                c.guid == attestation::snp::VCEK_GUID
                                    || c.guid == attestation::snp::VLEK_GUID
                            })
                            .map(|c| c.der.clone())
                            .unwrap_or_default();
                        match snp(&ev.report, &vek, None, None, reference, Some(&binding)) {
                            Ok(s) => v.absorb(&prefix, s),
                            Err(e) => v.push(
                                &prefix,
                                claim::HARDWARE,
                                Tier::Contraindicated,
                                e.to_string(),
                            ),
                        }
                    }
                    Err(e) => v.push(
                        &prefix,
                        claim::HARDWARE,
                        Tier::Contraindicated,
                        format!("snp evidence is not CBOR SnpEvidence: {e}"),
                    ),
                }
            }
            EvidenceKind::Tdx => {
                platform = platform.saturating_add(1);
                let verifier = TdxVerifier::default();
                v.absorb(
                    &prefix,
                    tdx(
                        &verifier,
                        &item.data,
                        tdx_collateral,
                        now_unix_s,
                        reference,
                        Some(&binding),
                    ),
                );
            }
            EvidenceKind::NvidiaGpu => {
                // Strict default: RIMs required (none can be given to `verify bundle`), so a
                // GPU item is affirmed only by the verifier service with its GPU policy.
                match attestation::gpu::appraise_gpu_item(
                    Some(&item.data),
                    parsed.binding(),
                    &attestation::gpu::GpuRequirement::default(),
                    i64::try_from(now_unix_s).unwrap_or(i64::MAX),
                ) {
                    attestation::gpu::GpuVerdict::Contraindicated(r) => {
                        v.push(&prefix, claim::HARDWARE, Tier::Contraindicated, r)
                    }
                    attestation::gpu::GpuVerdict::Affirming(r) => {
                        v.push(&prefix, claim::HARDWARE, Tier::Affirming, r)
                    }
                    attestation::gpu::GpuVerdict::NotRequired(r) => {
                        v.push(&prefix, claim::HARDWARE, Tier::None, r)
                    }
                }
            }
        }
    }
    if platform != 1 {
        v.push(
            "platform-reports",
            claim::HARDWARE,
            Tier::Contraindicated,
            format!("bundle carries {platform} platform reports, exactly one is required"),
        );
    }
    v.finish()
}

/// PCR values as a map, for reports.
pub fn pcr_map(pcrs: &[PcrValue]) -> BTreeMap<u8, String> {
    pcrs.iter()
        .map(|p| (p.index, hex::encode(&p.digest)))
        .collect()
}

/// `verify gpu`: one NVIDIA GPU's SPDM attestation report (hex text), its device chain (PEM),
/// the expected 32-byte nonce and the RIMs, appraised by `gpu-attest`; its claims become
/// checks of the same EAR-shaped verdict as the other evidence kinds.
pub fn gpu(
    report_hex: &str,
    chain_pem: &str,
    nonce: &[u8; 32],
    rims: &[Vec<u8>],
    policy: &gpu_attest::GpuPolicy,
    now_unix_s: i64,
) -> Verdict {
    let a = gpu_attest::verify_cli(report_hex, chain_pem, nonce, rims, policy, now_unix_s);
    let mut v = Verdict::new("nvidia-gpu");
    for c in &a.claims {
        let claim_name = match c.name.as_str() {
            "nonce" => claim::INSTANCE_IDENTITY,
            "driver-version" | "vbios-version" => claim::CONFIGURATION,
            n if n.contains("rim") || n == "measurements" => claim::EXECUTABLES,
            _ => claim::HARDWARE,
        };
        let tier = match c.status {
            gpu_attest::verify::Tier::Affirming => Tier::Affirming,
            gpu_attest::verify::Tier::Warning => Tier::Warning,
            _ => Tier::Contraindicated,
        };
        v.push(&c.name, claim_name, tier, c.reason.clone());
    }
    if let Ok(serde_json::Value::Object(gpu)) = serde_json::to_value(&a.gpu) {
        for (k, val) in gpu {
            if !val.is_null() {
                v.measure(&k, val);
            }
        }
    }
    v.measure("mismatched_indices", a.mismatched_indices.clone());
    v.finish()
}
