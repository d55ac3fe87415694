//! KEE-1 P1: Cedar policy evaluation. Synchronous, default deny, and every failure — a
//! malformed request, an evaluation error, no policy set loaded — is a DENY with a reason.
//! The policy set sits behind an `RwLock<Arc<_>>` so a swap is atomic: a reader holds one
//! whole set for its evaluation, never half of two.

use cedar_policy::{Authorizer, Context, Entities, EntityUid, PolicySet, Request};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use wire::msg::{Decision, EvaluateParams};

/// Longest context or entities JSON accepted (64 KiB).
pub const MAX_JSON_BYTES: usize = 64 * 1024;

/// A loaded policy set and its hash (`cap_profile_hash`).
#[derive(Debug)]
pub struct LoadedPolicies {
    set: PolicySet,
    hash: [u8; 32],
}

/// Errors loading a policy set.
#[derive(Debug, thiserror::Error)]
pub enum CedarError {
    /// "cedar policy set does not parse".
    #[error("cedar policy set does not parse: {0}")]
    Parse(String),
}

impl LoadedPolicies {
    /// Parses Cedar policy text; the hash is SHA-256 of the exact text.
    pub fn parse(text: &str) -> Result<Self, CedarError> {
        let set: PolicySet = text
            .parse()
            .map_err(|e: cedar_policy::ParseErrors| CedarError::Parse(e.to_string()))?;
        Ok(Self {
            set,
            hash: attestation::sha256(text.as_bytes()),
        })
    }
    /// The `cap_profile_hash`.
    pub fn hash(&self) -> [u8; 32] {
        self.hash
    }
}

/// The outcome of one evaluation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Allow or deny.
    pub decision: Decision,
    /// Policies that determined it.
    pub policies: Vec<String>,
    /// Errors and deny reasons.
    pub reasons: Vec<String>,
    /// Hash of the policy set that decided (empty-set hash when none was loaded).
    pub cap_profile_hash: [u8; 32],
}

/// The policy engine.
#[derive(Debug)]
pub struct Engine {
    current: RwLock<Option<Arc<LoadedPolicies>>>,
    authorizer: Authorizer,
    cache: Mutex<EvalCache>,
    /// `soos.governance.cedar.evaluate` spans (KEE-1 P6); off unless a kernel sets it.
    otel: crate::otel::Telemetry,
}

/// Most decisions the evaluation cache holds; a full cache is emptied and refilled.
pub const MAX_CACHED_DECISIONS: usize = 16_384;

/// KEE-2 D1's evaluation cache: outcomes by request, for one policy set. The key is SHA-256
/// over the whole request (principal, action, resource, context JSON, entities JSON, each
/// length-prefixed) — D1 names (action_type, context_hash, cap_profile_hash); the principal,
/// resource and entities are in the key too, because the decision depends on them. A cache
/// belongs to one `cap_profile_hash` and is emptied when the set changes, so a swap can never
/// serve an outcome of the old set.
#[derive(Debug, Default)]
struct EvalCache {
    cap_profile_hash: [u8; 32],
    outcomes: HashMap<[u8; 32], Outcome>,
}

fn request_key(p: &EvaluateParams) -> [u8; 32] {
    let mut h = ring::digest::Context::new(&ring::digest::SHA256);
    for part in [
        &p.principal,
        &p.action,
        &p.resource,
        &p.context_json,
        &p.entities_json,
    ] {
        h.update(&u64::try_from(part.len()).unwrap_or(u64::MAX).to_be_bytes());
        h.update(part.as_bytes());
    }
    let mut key = [0u8; 32];
    key.copy_from_slice(h.finish().as_ref());
    key
}

impl Engine {
    /// An engine with `policies` (or none: then everything is denied).
    pub fn new(policies: Option<LoadedPolicies>) -> Self {
        Self {
            current: RwLock::new(policies.map(Arc::new)),
            authorizer: Authorizer::new(),
            cache: Mutex::new(EvalCache::default()),
            otel: crate::otel::Telemetry::off(),
        }
    }

    /// This engine, with one `soos.governance.cedar.evaluate` span per [`Engine::evaluate`]
    /// made by `otel`, in the trace of the request's session.
    pub fn with_telemetry(mut self, otel: crate::otel::Telemetry) -> Self {
        self.otel = otel;
        self
    }

    /// Replaces the policy set atomically, and empties the evaluation cache.
    pub fn swap(&self, policies: LoadedPolicies) {
        if let Ok(mut g) = self.current.write() {
            *g = Some(Arc::new(policies));
        }
        if let Ok(mut c) = self.cache.lock() {
            c.outcomes.clear();
        }
    }

    /// Evaluates a request through the evaluation cache: an identical request under the same
    /// policy set gets the outcome computed the first time. Every call has its span (session
    /// `default` when the request names none, as in the audit log).
    pub fn evaluate(&self, p: &EvaluateParams) -> Outcome {
        let session = if p.session_id.is_empty() {
            "default"
        } else {
            &p.session_id
        };
        let mut span = self.otel.span(crate::otel::names::CEDAR_EVALUATE, session);
        let (o, cached) = self.evaluate_cached(p);
        span.set_attr(
            "soos.cedar.decision",
            match o.decision {
                Decision::Allow => "allow",
                Decision::Deny => "deny",
            },
        );
        span.set_list("soos.cedar.policies", &o.policies);
        if !o.reasons.is_empty() {
            span.set_list("soos.cedar.reasons", &o.reasons);
        }
        span.set_hex("soos.cap_profile_hash", &o.cap_profile_hash);
        span.set_attr("soos.cedar.action", p.action.clone());
        span.set_attr("soos.cedar.cached", cached);
        o
    }

    fn evaluate_cached(&self, p: &EvaluateParams) -> (Outcome, bool) {
        let Some(policies) = self.snapshot() else {
            return (self.evaluate_uncached(p), false);
        };
        let key = request_key(p);
        if let Ok(mut c) = self.cache.lock() {
            if c.cap_profile_hash != policies.hash {
                c.cap_profile_hash = policies.hash;
                c.outcomes.clear();
            }
            if let Some(o) = c.outcomes.get(&key) {
                return (o.clone(), true);
            }
        }
        let o = self.evaluate_with(&policies, p);
        if let Ok(mut c) = self.cache.lock() {
            // Only under the set it was computed with (a swap may have happened meanwhile).
            if c.cap_profile_hash == policies.hash {
                if c.outcomes.len() >= MAX_CACHED_DECISIONS {
                    c.outcomes.clear();
                }
                c.outcomes.insert(key, o.clone());
            }
        }
        (o, false)
    }

    /// How many outcomes the cache holds (for tests and metrics).
    pub fn cached_decisions(&self) -> usize {
        self.cache.lock().map_or(0, |c| c.outcomes.len())
    }

    /// The hash of the current set (SHA-256 of "" when none is loaded).
    pub fn cap_profile_hash(&self) -> [u8; 32] {
        self.snapshot()
            .map(|p| p.hash)
            .unwrap_or_else(|| attestation::sha256(b""))
    }

    fn snapshot(&self) -> Option<Arc<LoadedPolicies>> {
        self.current.read().ok().and_then(|g| g.clone())
    }

    /// Evaluates a request with Cedar, bypassing the cache. Never fails: every error is a
    /// deny with its reason.
    pub fn evaluate_uncached(&self, p: &EvaluateParams) -> Outcome {
        let Some(policies) = self.snapshot() else {
            return deny(attestation::sha256(b""), "no cedar policy set is loaded");
        };
        self.evaluate_with(&policies, p)
    }

    fn evaluate_with(&self, policies: &LoadedPolicies, p: &EvaluateParams) -> Outcome {
        let hash = policies.hash;
        match build_request(p) {
            Ok((request, entities)) => {
                let resp = self
                    .authorizer
                    .is_authorized(&request, &policies.set, &entities);
                let diag = resp.diagnostics();
                // Report a policy's `@id("...")` annotation when it has one, else Cedar's id.
                let policies_hit: Vec<String> = diag
                    .reason()
                    .map(|id| {
                        policies
                            .set
                            .policy(id)
                            .and_then(|p| p.annotation("id"))
                            .map(str::to_string)
                            .unwrap_or_else(|| id.to_string())
                    })
                    .collect();
                let errors: Vec<String> = diag.errors().map(|e| e.to_string()).collect();
                let decision = match resp.decision() {
                    cedar_policy::Decision::Allow if errors.is_empty() => Decision::Allow,
                    _ => Decision::Deny,
                };
                let mut reasons = errors;
                if decision == Decision::Deny && reasons.is_empty() {
                    reasons.push(if policies_hit.is_empty() {
                        "no policy permits this request".to_string()
                    } else {
                        "forbidden by policy".to_string()
                    });
                }
                Outcome {
                    decision,
                    policies: policies_hit,
                    reasons,
                    cap_profile_hash: hash,
                }
            }
            Err(reason) => deny(hash, &reason),
        }
    }
}

fn deny(hash: [u8; 32], reason: &str) -> Outcome {
    Outcome {
        decision: Decision::Deny,
        policies: Vec::new(),
        reasons: vec![reason.to_string()],
        cap_profile_hash: hash,
    }
}

fn build_request(p: &EvaluateParams) -> Result<(Request, Entities), String> {
    if p.context_json.len() > MAX_JSON_BYTES || p.entities_json.len() > MAX_JSON_BYTES {
        return Err("context or entities larger than 64 KiB".into());
    }
    let uid = |what: &str, s: &str| -> Result<EntityUid, String> {
        s.parse::<EntityUid>()
            .map_err(|e| format!("{what} `{s}` is not a cedar entity uid: {e}"))
    };
    let principal = uid("principal", &p.principal)?;
    let action = uid("action", &p.action)?;
    let resource = uid("resource", &p.resource)?;
    let context = if p.context_json.trim().is_empty() {
        Context::empty()
    } else {
        Context::from_json_str(&p.context_json, None).map_err(|e| format!("context: {e}"))?
    };
    let entities = if p.entities_json.trim().is_empty() {
        Entities::empty()
    } else {
        Entities::from_json_str(&p.entities_json, None).map_err(|e| format!("entities: {e}"))?
    };
    let request = Request::new(principal, action, resource, context, None)
        .map_err(|e| format!("request: {e}"))?;
    Ok((request, entities))
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = r#"
        permit(principal == Agent::"planner", action == Action::"read", resource)
        when { context.purpose == "relief" };
        forbid(principal, action == Action::"delete", resource);
    "#;

    fn params(principal: &str, action: &str, context: &str) -> EvaluateParams {
        EvaluateParams {
            principal: principal.into(),
            action: action.into(),
            resource: "Dataset::\"census\"".into(),
            context_json: context.into(),
            entities_json: String::new(),
            session_id: String::new(),
        }
    }

    #[test]
    fn allow_deny_and_errors() {
        let e = Engine::new(Some(LoadedPolicies::parse(POLICY).unwrap()));
        let ok = e.evaluate(&params(
            "Agent::\"planner\"",
            "Action::\"read\"",
            r#"{"purpose":"relief"}"#,
        ));
        assert_eq!(ok.decision, Decision::Allow);
        assert_eq!(ok.policies, vec!["policy0".to_string()]);
        let wrong_purpose = e.evaluate(&params(
            "Agent::\"planner\"",
            "Action::\"read\"",
            r#"{"purpose":"ads"}"#,
        ));
        assert_eq!(wrong_purpose.decision, Decision::Deny);
        let del = e.evaluate(&params("Agent::\"planner\"", "Action::\"delete\"", ""));
        assert_eq!(del.decision, Decision::Deny);
        // Evaluation error (missing context attribute) is a deny with the error as reason.
        let err = e.evaluate(&params("Agent::\"planner\"", "Action::\"read\"", ""));
        assert_eq!(err.decision, Decision::Deny);
        assert!(!err.reasons.is_empty());
        // Malformed uid.
        let bad = e.evaluate(&params("not a uid", "Action::\"read\"", ""));
        assert_eq!(bad.decision, Decision::Deny);
        assert!(bad.reasons[0].contains("principal"));
    }

    #[test]
    fn no_policy_set_denies_everything() {
        let e = Engine::new(None);
        let o = e.evaluate(&params(
            "Agent::\"planner\"",
            "Action::\"read\"",
            r#"{"purpose":"relief"}"#,
        ));
        assert_eq!(o.decision, Decision::Deny);
        assert_eq!(o.reasons, vec!["no cedar policy set is loaded".to_string()]);
    }

    #[test]
    fn swap_is_atomic_under_concurrent_readers() {
        let e = Arc::new(Engine::new(Some(LoadedPolicies::parse(POLICY).unwrap())));
        let deny_all = "forbid(principal, action, resource);";
        let readers: Vec<_> = (0..4)
            .map(|_| {
                let e = e.clone();
                std::thread::spawn(move || {
                    for _ in 0..300 {
                        let o = e.evaluate(&params(
                            "Agent::\"planner\"",
                            "Action::\"read\"",
                            r#"{"purpose":"relief"}"#,
                        ));
                        // Each evaluation sees one whole set: allow under POLICY, deny under deny-all.
                        let h1 = attestation::sha256(POLICY.as_bytes());
                        let h2 = attestation::sha256(deny_all.as_bytes());
                        match o.decision {
                            Decision::Allow => assert_eq!(o.cap_profile_hash, h1),
                            Decision::Deny => assert_eq!(o.cap_profile_hash, h2),
                        }
                    }
                })
            })
            .collect();
        for i in 0..50 {
            let text = if i % 2 == 0 { deny_all } else { POLICY };
            e.swap(LoadedPolicies::parse(text).unwrap());
        }
        for r in readers {
            r.join().unwrap();
        }
    }

    #[test]
    fn the_cache_answers_repeats_and_never_outlives_a_swap() {
        let e = Engine::new(Some(LoadedPolicies::parse(POLICY).unwrap()));
        let planner = params(
            "Agent::\"planner\"",
            "Action::\"read\"",
            r#"{"purpose":"relief"}"#,
        );
        let scraper = params(
            "Agent::\"scraper\"",
            "Action::\"read\"",
            r#"{"purpose":"relief"}"#,
        );
        let first = e.evaluate(&planner);
        assert_eq!(first.decision, Decision::Allow);
        assert_eq!(e.cached_decisions(), 1);
        assert_eq!(
            e.evaluate(&planner),
            first,
            "a repeat is answered from the cache"
        );
        assert_eq!(e.cached_decisions(), 1);
        // Same action and context, other principal: its own entry and its own decision.
        assert_eq!(e.evaluate(&scraper).decision, Decision::Deny);
        assert_eq!(e.cached_decisions(), 2);
        // A swap empties the cache: the cached allow is not served under the new set.
        e.swap(LoadedPolicies::parse(r#"forbid(principal, action, resource);"#).unwrap());
        assert_eq!(e.cached_decisions(), 0);
        let after = e.evaluate(&planner);
        assert_eq!(after.decision, Decision::Deny);
        assert_ne!(after.cap_profile_hash, first.cap_profile_hash);
        assert_eq!(after, e.evaluate_uncached(&planner));
    }

    #[test]
    fn the_cache_is_bounded() {
        let e = Engine::new(Some(LoadedPolicies::parse(POLICY).unwrap()));
        for i in 0..MAX_CACHED_DECISIONS + 10 {
            e.evaluate(&params(&format!("Agent::\"a{i}\""), "Action::\"read\"", ""));
        }
        assert!(e.cached_decisions() <= MAX_CACHED_DECISIONS);
        assert!(e.cached_decisions() >= 10);
    }
}
